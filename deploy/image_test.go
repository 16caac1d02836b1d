package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestHelperImage runs `make helper-image`, checks that the archive it
// writes is an OCI image layout whose entrypoint is /cc-helper, loads it
// with the SDK, and runs the entrypoint in a sandbox made from it: the
// binary there is the one the target built, and it answers as cc-helper.
func TestHelperImage(t *testing.T) {
	leakcheck.Check(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed (make deps installs it):", err)
	}
	dir := t.TempDir()
	out, cache := filepath.Join(dir, "out"), filepath.Join(dir, "cache")
	mk := exec.Command("make", "--no-print-directory", "-C", "..", "helper-image",
		"HELPER_IMAGE_OUT="+out, "HELPER_IMAGE_TAG=cc-helper:test")
	mk.Env = append(os.Environ(), "CC_CACHE_DIR="+cache)
	if b, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make helper-image: %v\n%s", err, b)
	}

	layout := filepath.Join(dir, "layout")
	untar(t, filepath.Join(out, "cc-helper.tar"), layout)
	if b, err := os.ReadFile(filepath.Join(layout, "oci-layout")); err != nil || !bytes.Contains(b, []byte(`"imageLayoutVersion"`)) {
		t.Fatalf("the archive has no oci-layout file: %q, %v", b, err)
	}
	var index v1.IndexManifest
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	if ref := index.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; !strings.Contains(ref, "test") {
		t.Errorf("the image is named %q, want the tag cc-helper:test", ref)
	}
	var manifest v1.Manifest
	readJSON(t, blob(layout, index.Manifests[0].Digest), &manifest)
	var config v1.ConfigFile
	readJSON(t, blob(layout, manifest.Config.Digest), &config)
	if !slices.Equal(config.Config.Entrypoint, []string{"/cc-helper"}) {
		t.Errorf("entrypoint %q, want [/cc-helper]", config.Config.Entrypoint)
	}
	if config.OS != "linux" {
		t.Errorf("os %q", config.OS)
	}

	ctx := context.Background()
	img, err := sandbox.LoadOCILayout(ctx, layout, sandbox.WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := sandbox.New(ctx, img, sandbox.WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	inImage, err := inst.ReadFile("cc-helper")
	if err != nil {
		t.Fatal(err)
	}
	built, err := os.ReadFile(filepath.Join(out, "context", "cc-helper"))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(inImage) != sha256.Sum256(built) {
		t.Errorf("/cc-helper in the image (%d bytes) is not the cc-helper make built (%d bytes)", len(inImage), len(built))
	}
	// The entrypoint runs: cc-helper's flag parser answers -h with its
	// usage and exit status 2, in an image with nothing else in it.
	b, err := inst.EntrypointCommand("-h").CombinedOutput()
	var ee *sandbox.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(b), "cc-helper") {
		t.Errorf("cc-helper -h in the image: %v\n%s", err, b)
	}
	if err := inst.Close(); err != nil {
		t.Error(err)
	}
}

func blob(layout string, h v1.Hash) string {
	return filepath.Join(layout, "blobs", h.Algorithm, h.Hex)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// untar extracts the regular files and directories of the archive at path
// into dir; it refuses any other entry and any name that leaves dir.
func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) && name != "." {
			t.Fatalf("archive entry %q leaves the layout", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			var w *os.File
			if w, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
				_, err = io.Copy(w, tr)
				err = errors.Join(err, w.Close())
			}
		default:
			t.Fatalf("archive entry %q: type %c in an OCI layout", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
