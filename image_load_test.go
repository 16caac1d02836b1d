//go:build linux

package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
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
// manifest is refused, however the manifest spells its fields (JSON
// decoding matches names without regard to case, and needs none of
// them), and that image, loaded afterwards into the same store, is
// itself and runs.
func TestLoadArchiveConfigIsManifest(t *testing.T) {
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := src.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	// respell returns the manifest with its fields renamed and with what
	// an image config has added, so that it passes for both.
	respell := func(rename map[string]string) []byte {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for from, to := range rename {
			if to != "" {
				m[to] = m[from]
			}
			delete(m, from)
		}
		m["rootfs"] = map[string]any{"type": "layers", "diff_ids": []string{}}
		m["os"], m["architecture"] = "linux", runtime.GOARCH
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name     string
		manifest []byte
	}{
		{"as is", raw},
		{"SchemaVersion", respell(map[string]string{"schemaVersion": "SchemaVersion"})},
		{"no schemaVersion, LAYERS", respell(map[string]string{"schemaVersion": "", "layers": "LAYERS"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			cache := t.TempDir()
			archive := filepath.Join(t.TempDir(), "hostile.tar")
			writeArchive(t, archive, map[string][]byte{
				"config.json":   c.manifest,
				"manifest.json": []byte(`[{"Config":"config.json","RepoTags":["hostile/x:1"],"Layers":[]}]`),
			})
			if img, err := LoadDockerArchive(ctx, archive, WithCacheDir(cache)); err == nil {
				t.Errorf("an archive whose config is a manifest was loaded, as %s", img.Digest())
			}
			dir := t.TempDir()
			if err := testimage.WriteLayout(dir, src, "busybox"); err != nil {
				t.Fatal(err)
			}
			replaceLayoutManifest(t, dir, c.manifest)
			img, err := LoadOCILayout(ctx, dir, WithCacheDir(cache))
			if err != nil {
				t.Fatal(err)
			}
			inst := newInstance(t, img, WithCacheDir(cache))
			if got := run(t, inst, "echo ok"); got != "ok\n" {
				t.Errorf("the image whose manifest the archive held: %q", got)
			}
		})
	}
}

// writeArchive writes a tar of files at p.
func writeArchive(t *testing.T, p string, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceLayoutManifest makes manifest the one image of the OCI layout
// dir: its blob, and the index's one descriptor.
func replaceLayoutManifest(t *testing.T, dir string, manifest []byte) {
	t.Helper()
	sum := sha256.Sum256(manifest)
	hexSum := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", hexSum), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	idxPath := filepath.Join(dir, "index.json")
	b, err := os.ReadFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		SchemaVersion int              `json:"schemaVersion"`
		MediaType     string           `json:"mediaType,omitempty"`
		Manifests     []map[string]any `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("the layout's index: %d manifests, %v", len(idx.Manifests), err)
	}
	idx.Manifests[0]["digest"], idx.Manifests[0]["size"] = "sha256:"+hexSum, len(manifest)
	if b, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idxPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
