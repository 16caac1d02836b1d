//go:build linux

package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/image/imagetest"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestLoadOCILayout(t *testing.T) {
	leakcheck.Check(t)
	busybox := imagetest.Busybox(t)
	multi := imagetest.MultiLayer(t, 1<<20)
	dir := t.TempDir()
	if err := testimage.WriteLayout(dir, busybox, "busybox"); err != nil {
		t.Fatal(err)
	}
	p, _ := layout.FromPath(dir)
	if err := p.AppendImage(multi, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "multi"})); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cache := WithCacheDir(t.TempDir())

	if _, err := LoadOCILayout(ctx, dir, cache); err == nil || !strings.Contains(err.Error(), "several images") || !strings.Contains(err.Error(), "multi") {
		t.Errorf("a layout of two images without a choice: %v", err)
	}
	img, err := LoadOCILayout(ctx, dir, cache, WithTag("multi"))
	if err != nil {
		t.Fatal(err)
	}
	if img.Reference() != "multi" {
		t.Errorf("Reference = %q", img.Reference())
	}
	checkMultiLayer(t, img, multi)
	d, _ := busybox.Digest()
	img, err = LoadOCILayout(ctx, dir, cache, WithDigest(d.String()))
	if err != nil || img.Digest() != d.String() {
		t.Fatalf("WithDigest: %v %v", img, err)
	}
	if _, err := LoadOCILayout(ctx, dir, cache, WithTag("nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an absent tag: %v", err)
	}
	if _, err := LoadOCILayout(ctx, t.TempDir(), cache); err == nil {
		t.Error("an empty directory loaded as a layout")
	}
	if _, err := LoadOCILayout(ctx, dir, WithDigest("sha256:short")); err == nil {
		t.Error("a malformed digest was accepted")
	}

	// An index of platforms inside the layout: resolved like a pull.
	other := imagetest.ForPlatform(t, busybox, "riscv64", "")
	idxDir := t.TempDir()
	p2, _ := layout.Write(idxDir, imagetest.MultiPlatform(t, other, busybox))
	_ = p2
	img, err = LoadOCILayout(ctx, idxDir, cache)
	if err != nil || img.Digest() != d.String() {
		t.Errorf("a layout of platforms: %v %v, want the host's", img, err)
	}
	img, err = LoadOCILayout(ctx, idxDir, cache, WithPlatform("linux/riscv64"))
	if od, _ := other.Digest(); err != nil || img.Digest() != od.String() {
		t.Errorf("a layout of platforms, riscv64: %v %v", img, err)
	}
}

func TestLoadDockerArchive(t *testing.T) {
	leakcheck.Check(t)
	busybox := imagetest.Busybox(t)
	multi := imagetest.MultiLayer(t, 1<<20)
	path := filepath.Join(t.TempDir(), "images.tar")
	bt, _ := name.NewTag("example.com/busybox:1")
	mt, _ := name.NewTag("example.com/multi:1")
	if err := tarball.MultiWriteToFile(path, map[name.Tag]v1.Image{bt: busybox, mt: multi}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cache := WithCacheDir(t.TempDir())
	if _, err := LoadDockerArchive(ctx, path, cache); err == nil || !strings.Contains(err.Error(), "several images") {
		t.Errorf("an archive of two images without a choice: %v", err)
	}
	img, err := LoadDockerArchive(ctx, path, cache, WithTag("example.com/multi:1"))
	if err != nil {
		t.Fatal(err)
	}
	if cn, _ := multi.ConfigName(); img.Digest() != cn.String() {
		t.Errorf("Digest = %s, want the config digest %s", img.Digest(), cn)
	}
	layers, _ := img.layersAndConfig()
	if len(layers) != 3 || img.Reference() != "example.com/multi:1" {
		t.Errorf("%d layers, reference %q", len(layers), img.Reference())
	}
	cn, _ := busybox.ConfigName()
	img, err = LoadDockerArchive(ctx, path, cache, WithDigest(cn.String()))
	if err != nil || img.Reference() != "example.com/busybox:1" {
		t.Errorf("WithDigest: %v %v", img, err)
	}
	if _, err := LoadDockerArchive(ctx, path, cache, WithTag("example.com/none:1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an absent tag: %v", err)
	}
	if _, err := LoadDockerArchive(ctx, filepath.Join(t.TempDir(), "missing.tar"), cache); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing archive: %v", err)
	}
}

// TestLoadArchiveConfigIsManifest: a docker archive's image is recorded
// under its config's digest, pulled and laid-out images under their
// manifests'. An archive whose config is the bytes of another image's
// manifest is refused, and that image, loaded or pulled afterwards into
// the same store, is itself and runs.
func TestLoadArchiveConfigIsManifest(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := src.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"config.json", manifest},
		{"manifest.json", []byte(`[{"Config":"config.json","RepoTags":["hostile/x:1"],"Layers":[]}]`)},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		tw.Write(f.data)
	}
	tw.Close()
	archive := filepath.Join(t.TempDir(), "hostile.tar")
	if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if img, err := LoadDockerArchive(ctx, archive, WithCacheDir(cache)); err == nil {
		t.Errorf("an archive whose config is a manifest was loaded, as %s", img.Digest())
	}
	dir := t.TempDir()
	if err := testimage.WriteLayout(dir, src, "busybox"); err != nil {
		t.Fatal(err)
	}
	img, err := LoadOCILayout(ctx, dir, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	inst := newInstance(t, img, WithCacheDir(cache))
	if got := run(t, inst, "echo ok"); got != "ok\n" {
		t.Errorf("the image whose manifest the archive held: %q", got)
	}
}
