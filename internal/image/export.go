package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// Exported is an image made from layer directories, ready to be written
// out, its layers gzipped into a TempDir of the store. Close removes them.
type Exported struct {
	v1.Image
	td *TempDir
}

// Close removes the exported layers. It is safe to call twice.
func (e *Exported) Close() error {
	if e.td == nil {
		return nil
	}
	return e.td.Remove()
}

// Export makes an OCI image of the layer directories (lowest first) and
// the config blob rawConfig, whose rootfs is replaced by the new layers'
// diffIDs (everything else is kept). Each layer is written once with
// layertar.Write and gzipped into a store TempDir; the image's digest is
// therefore that of the re-created layers, not the source's. The caller
// closes the result.
func (s *Store) Export(ctx context.Context, layerDirs []string, rawConfig []byte) (*Exported, error) {
	var td *TempDir
	if len(layerDirs) > 0 {
		// A nil store (an image with no layers) needs no TempDir.
		var err error
		if td, err = s.TempDir(ctx, "export"); err != nil {
			return nil, err
		}
	}
	ok := false
	defer func() {
		if !ok && td != nil {
			td.Remove()
		}
	}()
	var layers []*exportLayer
	var diffIDs []v1.Hash
	for i, dir := range layerDirs {
		l, diffID, err := s.exportLayer(ctx, dir, filepath.Join(td.Path(), fmt.Sprintf("layer%d.tar.gz", i)))
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
		diffIDs = append(diffIDs, diffID)
	}
	config, err := replaceRootFS(rawConfig, diffIDs)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(config)), Digest: sha256Of(config)},
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Size: l.size, Digest: l.digest})
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	img, err := partial.CompressedToImage(&exportImage{config: config, manifest: rawManifest, layers: layers})
	if err != nil {
		return nil, err
	}
	ok = true
	return &Exported{Image: img, td: td}, nil
}

// exportLayer writes the layer directory dir to path, gzipped, hashing
// the tar and the gzip stream on the way.
func (s *Store) exportLayer(ctx context.Context, dir, path string) (*exportLayer, v1.Hash, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	defer f.Close()
	blob := &hashWriter{h: sha256.New(), w: f}
	zw, err := gzip.NewWriterLevel(blob, gzip.BestSpeed)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	tarHash := &hashWriter{h: sha256.New(), w: zw}
	if err := layertar.Write(ctx, tarHash, dir, s.ids, s.log); err != nil {
		return nil, v1.Hash{}, fmt.Errorf("exporting layer %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return nil, v1.Hash{}, err
	}
	if err := f.Close(); err != nil {
		return nil, v1.Hash{}, err
	}
	return &exportLayer{path: path, digest: blob.sum(), size: blob.n}, tarHash.sum(), nil
}

// replaceRootFS returns the config with its rootfs replaced, keeping every
// other field as it was.
func replaceRootFS(raw []byte, diffIDs []v1.Hash) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if diffIDs == nil {
		diffIDs = []v1.Hash{}
	}
	rootfs, err := json.Marshal(v1.RootFS{Type: "layers", DiffIDs: diffIDs})
	if err != nil {
		return nil, err
	}
	m["rootfs"] = rootfs
	return json.Marshal(m)
}

type hashWriter struct {
	h hash.Hash
	w io.Writer
	n int64
}

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashWriter) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.h.Sum(nil))}
}

// exportImage is the partial.CompressedImageCore of an Exported image.
type exportImage struct {
	config, manifest []byte
	layers           []*exportLayer
}

func (e *exportImage) RawConfigFile() ([]byte, error)      { return e.config, nil }
func (e *exportImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (e *exportImage) RawManifest() ([]byte, error)        { return e.manifest, nil }
func (e *exportImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range e.layers {
		if l.digest == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("exported image has no layer %s", h)
}

// exportLayer is a gzipped layer in a file.
type exportLayer struct {
	path   string
	digest v1.Hash
	size   int64
}

func (l *exportLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *exportLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *exportLayer) Size() (int64, error)                { return l.size, nil }
func (l *exportLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// WriteLayout adds img to the OCI layout in dir, creating the layout when
// dir is missing or empty, and names it tag (the ref.name annotation)
// unless tag is empty. A dir that holds something else is an error.
func WriteLayout(dir string, img v1.Image, tag string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		es, rerr := os.ReadDir(dir)
		if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) || len(es) > 0 {
			return fmt.Errorf("writing OCI layout: %s is not empty and not a layout: %w", dir, err)
		}
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("writing OCI layout: %w", err)
		}
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{annotationRefName: tag}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}

// WriteArchive writes img to path as a docker archive (docker save's
// format), named tag unless tag is empty; path appears only when complete.
func WriteArchive(path string, img v1.Image, tag string) error {
	var ref name.Reference
	if tag != "" {
		t, err := name.NewTag(tag)
		if err != nil {
			return fmt.Errorf("writing docker archive: tag %q: %w", tag, err)
		}
		ref = t
	} else {
		d, err := img.Digest()
		if err != nil {
			return err
		}
		if ref, err = name.NewDigest("image@" + d.String()); err != nil {
			return err
		}
	}
	err := fsutil.WriteAtomic(path, 0o644, func(f *os.File) error {
		return tarball.MultiRefWrite(map[name.Reference]v1.Image{ref: img}, f)
	})
	if err != nil {
		return fmt.Errorf("writing docker archive %s: %w", path, err)
	}
	return nil
}
