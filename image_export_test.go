//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image/imagetest"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerTars returns each layer of img as layertar.Write writes it.
func layerTars(t *testing.T, img *Image) [][]byte {
	t.Helper()
	layers, _ := img.layersAndConfig()
	var out [][]byte
	for _, l := range layers {
		var buf bytes.Buffer
		if err := layertar.Write(context.Background(), &buf, l, idmap.Current(), nil); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

func sameLayers(t *testing.T, a, b *Image) {
	t.Helper()
	at, bt := layerTars(t, a), layerTars(t, b)
	if len(at) != len(bt) {
		t.Fatalf("%d layers, then %d", len(at), len(bt))
	}
	for i := range at {
		if !bytes.Equal(at[i], bt[i]) {
			t.Errorf("layer %d differs after the round trip", i)
		}
	}
	if strings.Join(a.Config().Cmd, " ") != strings.Join(b.Config().Cmd, " ") || strings.Join(a.Config().Env, " ") != strings.Join(b.Config().Env, " ") {
		t.Errorf("config differs: %+v, then %+v", a.Config(), b.Config())
	}
}

func TestExportRoundTrip(t *testing.T) {
	leakcheck.Check(t, "cc-podman-")
	skopeo := imagetest.RequireTool(t, "skopeo", "skopeo")
	reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{})
	ref := reg.Ref("test/multi:1")
	imagetest.Push(t, reg, ref, imagetest.MultiLayer(t, 1<<20))
	ctx := context.Background()
	orig, err := Pull(ctx, ref, WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	t.Run("oci layout", func(t *testing.T) {
		dir := filepath.Join(work, "layout")
		if err := orig.WriteOCILayout(ctx, dir, WithTag("rt")); err != nil {
			t.Fatal(err)
		}
		// internal/exportcheck validates it with go-containerregistry.
		if _, err := layout.ImageIndexFromPath(dir); err != nil {
			t.Fatal(err)
		}
		back, err := LoadOCILayout(ctx, dir, WithCacheDir(t.TempDir()), WithTag("rt"))
		if err != nil {
			t.Fatal(err)
		}
		sameLayers(t, orig, back)
		// Exporting is deterministic: the reloaded image exports to the
		// same digest.
		dir2 := filepath.Join(work, "layout2")
		if err := back.WriteOCILayout(ctx, dir2); err != nil {
			t.Fatal(err)
		}
		again, err := LoadOCILayout(ctx, dir2, WithCacheDir(t.TempDir()))
		if err != nil || again.Digest() != back.Digest() {
			t.Errorf("second export: %v %v, want digest %s", again, err, back.Digest())
		}
		// skopeo reads it and checks every digest on copy.
		if out, err := exec.Command(skopeo, "copy", "--quiet", "oci:"+dir+":rt", "dir:"+filepath.Join(work, "skopeo-dir")).CombinedOutput(); err != nil {
			t.Errorf("skopeo copy oci: %v\n%s", err, out)
		}
		if err := orig.WriteOCILayout(ctx, work); err == nil {
			t.Error("WriteOCILayout into a non-empty non-layout directory succeeded")
		}
	})

	t.Run("docker archive", func(t *testing.T) {
		path := filepath.Join(work, "image.tar")
		if err := orig.WriteDockerArchive(ctx, path); err != nil {
			t.Fatal(err)
		}
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
		if err != nil || len(m) != 1 || len(m[0].RepoTags) != 1 {
			t.Fatalf("manifest.json: %+v, %v", m, err)
		}
		if _, err := tarball.ImageFromPath(path, nil); err != nil { // validated in internal/exportcheck
			t.Fatal(err)
		}
		back, err := LoadDockerArchive(ctx, path, WithCacheDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if back.Reference() != ref {
			t.Errorf("the archive names the image %q, want %q", back.Reference(), ref)
		}
		sameLayers(t, orig, back)
		if out, err := exec.Command(skopeo, "copy", "--quiet", "docker-archive:"+path, "oci:"+filepath.Join(work, "from-archive")+":x").CombinedOutput(); err != nil {
			t.Errorf("skopeo copy docker-archive: %v\n%s", err, out)
		}
		podmanLoad(t, path)
	})
}

// podmanLoad loads a docker archive with podman, its storage in a temp dir.
func podmanLoad(t *testing.T, archive string) {
	t.Helper()
	if os.Geteuid() != 0 {
		// What podman accepts does not depend on who runs it, and
		// rootless podman needs subordinate ids this user may not have:
		// the root run checks it.
		t.Log("podman load is checked in the run as root")
		return
	}
	podman := imagetest.RequireTool(t, "podman", "podman")
	dir, err := os.MkdirTemp("", "cc-podman-") // podman wants a short runroot
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	args := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	out, err := exec.Command(podman, append(args, "load", "-i", archive)...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Loaded image") {
		t.Errorf("podman load said %s", out)
	}
}
