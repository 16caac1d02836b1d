package image

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/ccsandbox/sandbox/internal/layertar"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// contentFile, beside a layer's layer.json, remembers what the layer is
// as a tar (ContentID): its files never change, and hashing them again
// costs a read of every file. It goes with the layer.
const contentFile = "content.json"

// LayerContent is a layer of the store as the plain tar WriteLayerTar
// writes: the tar's sha256 and length.
type LayerContent struct {
	DiffID v1.Hash `json:"diffID"`
	Size   int64   `json:"size"`
}

// ContentID returns what the layer id is as a tar (WriteLayerTar's
// output): its diffID and size, hashed once and remembered beside the
// layer. It returns an error matching fs.ErrNotExist when the store lacks
// the layer, and the walk's errors.
func (s *Store) ContentID(ctx context.Context, id v1.Hash) (LayerContent, error) {
	if !s.HasLayer(id) {
		return LayerContent{}, fmt.Errorf("layer %s: %w", id, fs.ErrNotExist)
	}
	path := filepath.Join(s.layerPath(id), contentFile)
	if b, err := os.ReadFile(path); err == nil {
		var c LayerContent
		if json.Unmarshal(b, &c) == nil && validHash(c.DiffID) && c.Size >= 0 {
			return c, nil
		}
	}
	h := &hashWriter{h: sha256.New(), w: io.Discard}
	if err := s.WriteLayerTar(ctx, h, id); err != nil {
		return LayerContent{}, err
	}
	c := LayerContent{DiffID: h.sum(), Size: h.n}
	data, err := json.Marshal(c)
	if err != nil {
		return LayerContent{}, err
	}
	if err := writeFileAtomic(path, data); err != nil {
		s.log.Debug("layer content not remembered", "id", id, "err", err)
	}
	return c, nil
}

// WriteLayerTar writes the layer id to w as a plain OCI layer tar
// (layertar.Write: the same files always give the same bytes). It returns
// an error matching fs.ErrNotExist when the store lacks the layer, and the
// walk's or w's errors.
func (s *Store) WriteLayerTar(ctx context.Context, w io.Writer, id v1.Hash) error {
	if !s.HasLayer(id) {
		return fmt.Errorf("layer %s: %w", id, fs.ErrNotExist)
	}
	return layertar.Write(ctx, w, s.LayerDir(id), s.ids, s.log)
}

// WithDiffIDs returns the config blob raw with its rootfs replaced by
// diffIDs (lowest first), keeping every other field as it was. It returns
// an error when raw is not a JSON object.
func WithDiffIDs(raw []byte, diffIDs []v1.Hash) ([]byte, error) {
	return replaceRootFS(raw, diffIDs)
}

// ConfigDigest returns the sha256 of a config blob: the digest of an
// image the store records without a manifest.
func ConfigDigest(raw []byte) v1.Hash { return sha256Of(raw) }

// ScratchConfig returns the config blob of the empty image: no layers,
// no command, for the host's platform.
func ScratchConfig() []byte {
	b, _ := json.Marshal(v1.ConfigFile{Architecture: runtime.GOARCH, OS: "linux", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}}})
	return b
}
