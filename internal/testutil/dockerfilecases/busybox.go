package dockerfilecases

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Busybox returns the "busybox" base the cases expect: the test busybox
// image's one layer (see testimage.Busybox) with /etc/passwd and
// /etc/group replaced by those of _base/busybox-etc in dir, and the same
// config.
func Busybox(dir string) (v1.Image, error) {
	passwd, err := os.ReadFile(filepath.Join(dir, "_base", "busybox-etc", "passwd"))
	if err != nil {
		return nil, err
	}
	group, err := os.ReadFile(filepath.Join(dir, "_base", "busybox-etc", "group"))
	if err != nil {
		return nil, err
	}
	src, err := testimage.Busybox()
	if err != nil {
		return nil, err
	}
	layers, err := src.Layers()
	if err != nil {
		return nil, err
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		switch h.Name {
		case "etc/passwd":
			data = passwd
		case "etc/group":
			data = group
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := testimage.LayerFromTar(buf.Bytes())
	if err != nil {
		return nil, err
	}
	cfg, err := src.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = nil
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	c2, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg.RootFS = c2.RootFS
	cfg.History = c2.History
	return mutate.ConfigFile(img, cfg)
}
