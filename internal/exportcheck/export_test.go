package exportcheck_test

import (
	"context"
	"path/filepath"
	"testing"

	sandbox "github.com/ccsandbox/sandbox"
	"github.com/ccsandbox/sandbox/internal/image/imagetest"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestExportValidates: an OCI layout and a docker archive written from a
// pulled multi-layer image pass go-containerregistry's validation, which
// reads every blob back and checks its digest, size and diff ID against
// the manifest and the config.
func TestExportValidates(t *testing.T) {
	reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{})
	ref := reg.Ref("test/multi:1")
	imagetest.Push(t, reg, ref, imagetest.MultiLayer(t, 1<<20))
	ctx := context.Background()
	img, err := sandbox.Pull(ctx, ref, sandbox.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	t.Run("oci layout", func(t *testing.T) {
		dir := filepath.Join(work, "layout")
		if err := img.WriteOCILayout(ctx, dir, sandbox.WithTag("v")); err != nil {
			t.Fatal(err)
		}
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Index(idx); err != nil {
			t.Errorf("validate: %v", err)
		}
	})

	t.Run("docker archive", func(t *testing.T) {
		path := filepath.Join(work, "image.tar")
		if err := img.WriteDockerArchive(ctx, path); err != nil {
			t.Fatal(err)
		}
		back, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(back); err != nil {
			t.Errorf("validate: %v", err)
		}
	})
}
