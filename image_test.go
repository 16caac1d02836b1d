//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image/imagetest"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// requestCounter counts a registry's requests: manifests and blobs.
type requestCounter struct {
	mu               sync.Mutex
	manifests, blobs int
}

func (c *requestCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		switch {
		case strings.Contains(r.URL.Path, "/manifests/"):
			c.manifests++
		case strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet:
			c.blobs++
		}
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *requestCounter) get() (manifests, blobs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.manifests, c.blobs
}

// checkMultiLayer checks what a sandbox would get from the multi-layer
// test image: three layers in overlay format, with ownership mapped.
func checkMultiLayer(t *testing.T, img *Image, want v1.Image) {
	t.Helper()
	d, _ := want.Digest()
	if img.Digest() != d.String() {
		t.Errorf("Digest = %s, want %s", img.Digest(), d)
	}
	cfg := img.Config()
	if strings.Join(cfg.Cmd, " ") != "sh" || len(cfg.Env) != 1 || cfg.OS != "linux" || cfg.Architecture == "" {
		t.Errorf("Config = %+v", cfg)
	}
	layers, oci := img.layersAndConfig()
	if len(layers) != 3 || len(oci.RootFS.DiffIDs) != 3 || len(img.layers) != 3 || img.layerStore() == nil {
		t.Fatalf("rootfs: %d layers, config lists %d", len(layers), len(oci.RootFS.DiffIDs))
	}
	spec, err := img.rootfs(context.Background(), &storeOptions{})
	if err != nil || strings.Join(spec.layers, " ") != strings.Join(layers, " ") || strings.Join(spec.config.Cmd, " ") != "sh" {
		t.Errorf("rootfs = %+v, %v", spec, err)
	}
	if fi, err := os.Stat(filepath.Join(layers[0], "bin/busybox")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/busybox: %v %v", fi, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(layers[1], "etc/group"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/group in layer 2 is not a whiteout: %v %o", err, st.Mode)
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(filepath.Join(layers[1], "home"), "user.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("home in layer 2 is not opaque: %v", err)
	}
	if err := unix.Lstat(filepath.Join(layers[1], "home/user/.profile"), &st); err != nil {
		t.Fatal(err)
	}
	m := idmap.Current()
	if wantUID, _ := m.HostUID(1000); !m.Single() && st.Uid != wantUID {
		t.Errorf("home/user/.profile owned by %d, want %d", st.Uid, wantUID)
	}
	if fi, err := os.Stat(filepath.Join(layers[2], "data/big")); err != nil || fi.Size() != 1<<20 {
		t.Errorf("data/big: %v %v", fi, err)
	}
}

func TestPullFromRegistries(t *testing.T) {
	leakcheck.Check(t)
	want := imagetest.MultiLayer(t, 1<<20)
	regs := map[string]func(t *testing.T) *imagetest.Registry{
		"in-process": func(t *testing.T) *imagetest.Registry {
			return imagetest.StartRegistry(t, imagetest.RegistryOptions{})
		},
		"docker-registry": func(t *testing.T) *imagetest.Registry { return imagetest.StartDockerRegistry(t) },
	}
	for name, start := range regs {
		t.Run(name, func(t *testing.T) {
			reg := start(t)
			ref := reg.Ref("test/multi:1")
			imagetest.Push(t, reg, ref, want)
			var mu sync.Mutex
			var last []Progress
			img, err := Pull(context.Background(), ref, WithCacheDir(t.TempDir()), WithProgress(func(p Progress) {
				mu.Lock()
				last = append(last, p)
				mu.Unlock()
			}))
			if err != nil {
				t.Fatal(err)
			}
			if img.Reference() != ref {
				t.Errorf("Reference = %q, want %q", img.Reference(), ref)
			}
			checkMultiLayer(t, img, want)
			complete := 0
			for _, p := range last {
				if p.Complete && p.Done == p.Total && p.Count == 3 {
					complete++
				}
			}
			if complete != 3 {
				t.Errorf("%d layers reported complete, want 3: %+v", complete, last)
			}
		})
	}
}

func TestPullAuth(t *testing.T) {
	leakcheck.Check(t)
	reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{Username: "alice", Password: "s3cret"})
	want := imagetest.Busybox(t)
	ref := reg.Ref("private/busybox:1")
	imagetest.Push(t, reg, ref, want)
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials at all
	ctx := context.Background()

	if _, err := Pull(ctx, ref, WithCacheDir(t.TempDir())); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("Pull without credentials: %v, want unauthorized", err)
	}
	if _, err := Pull(ctx, ref, WithCacheDir(t.TempDir()), WithAuth("alice", "wrong")); err == nil {
		t.Error("Pull with a wrong password succeeded")
	}
	if _, err := Pull(ctx, ref, WithCacheDir(t.TempDir()), WithAuth("alice", "s3cret")); err != nil {
		t.Errorf("Pull WithAuth: %v", err)
	}
	if _, err := Pull(ctx, ref, WithAuth("a", "b"), WithKeychain(nil)); err == nil {
		t.Error("WithKeychain(nil) was accepted")
	}

	// The default keychain: the Docker config file...
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	os.WriteFile(filepath.Join(cfgDir, "config.json"),
		[]byte(`{"auths":{"`+reg.Host+`":{"auth":"YWxpY2U6czNjcmV0"}}}`), 0o600) // alice:s3cret
	if _, err := Pull(ctx, ref, WithCacheDir(t.TempDir())); err != nil {
		t.Errorf("Pull with credentials in the Docker config: %v", err)
	}
	// ...and the credential helpers it names.
	binDir := t.TempDir()
	helper := "#!/bin/sh\nread host\necho '{\"ServerURL\":\"'$host'\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}'\n"
	os.WriteFile(filepath.Join(binDir, "docker-credential-cctest"), []byte(helper), 0o755)
	t.Setenv("PATH", binDir+":"+os.Getenv("PATH"))
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"credHelpers":{"`+reg.Host+`":"cctest"}}`), 0o600)
	if _, err := Pull(ctx, ref, WithCacheDir(t.TempDir())); err != nil {
		t.Errorf("Pull with a credential helper: %v", err)
	}
}

func TestPullPolicy(t *testing.T) {
	leakcheck.Check(t)
	c := &requestCounter{}
	reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{Wrap: c.wrap})
	want := imagetest.Busybox(t)
	ref := reg.Ref("test/busybox:1")
	imagetest.Push(t, reg, ref, want)
	ctx := context.Background()
	cache := WithCacheDir(t.TempDir())

	if _, err := Pull(ctx, ref, cache, WithPullPolicy(PullNever)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PullNever of an absent image: %v, want fs.ErrNotExist", err)
	}
	first, err := Pull(ctx, ref, cache)
	if err != nil {
		t.Fatal(err)
	}
	m0, b0 := c.get()
	again, err := Pull(ctx, ref, cache)
	if err != nil || again.Digest() != first.Digest() {
		t.Fatalf("second Pull: %v %v", again, err)
	}
	if m, b := c.get(); m != m0 || b != b0 {
		t.Errorf("PullIfNotPresent of a present image asked the registry (%d manifest, %d blob requests)", m-m0, b-b0)
	}
	if _, err := Pull(ctx, ref, cache, WithPullPolicy(PullNever)); err != nil {
		t.Errorf("PullNever of a present image: %v", err)
	}
	if _, err := Pull(ctx, ref, cache, WithPullPolicy(PullAlways)); err != nil {
		t.Fatal(err)
	}
	if m, b := c.get(); m == m0 || b != b0 {
		t.Errorf("PullAlways: %d manifest requests (want some), %d blob requests (want none: all present)", m-m0, b-b0)
	}
	if _, err := Pull(ctx, ref, WithPullPolicy(PullPolicy(7))); err == nil {
		t.Error("an unknown pull policy was accepted")
	}
}

func TestPullPlatforms(t *testing.T) {
	leakcheck.Check(t)
	reg := imagetest.StartDockerRegistry(t)
	host := imagetest.Busybox(t)
	other := imagetest.ForPlatform(t, host, "arm64", "v8")
	if cfg, _ := host.ConfigFile(); cfg.Architecture == "arm64" {
		other = imagetest.ForPlatform(t, host, "amd64", "")
	}
	otherCfg, _ := other.ConfigFile()
	otherPlatform := "linux/" + otherCfg.Architecture
	imagetest.PushIndex(t, reg, reg.Ref("test/multi:1"), imagetest.MultiPlatform(t, other, host))
	imagetest.Push(t, reg, reg.Ref("test/foreign:1"), other)
	ctx := context.Background()

	img, err := Pull(ctx, reg.Ref("test/multi:1"), WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := host.Digest(); img.Digest() != d.String() {
		t.Errorf("from the index: %s, want the host's image %s", img.Digest(), d)
	}
	img, err = Pull(ctx, reg.Ref("test/multi:1"), WithCacheDir(t.TempDir()), WithPlatform(otherPlatform))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := other.Digest(); img.Digest() != d.String() || img.Config().Architecture != otherCfg.Architecture {
		t.Errorf("WithPlatform(%s): %s %s, want %s", otherPlatform, img.Digest(), img.Config().Architecture, d)
	}
	_, err = Pull(ctx, reg.Ref("test/multi:1"), WithCacheDir(t.TempDir()), WithPlatform("linux/s390x"))
	if err == nil || !strings.Contains(err.Error(), "no image for linux/s390x") || !strings.Contains(err.Error(), otherPlatform) {
		t.Errorf("a platform the index lacks: %v", err)
	}
	_, err = Pull(ctx, reg.Ref("test/foreign:1"), WithCacheDir(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "is an image for "+otherPlatform) {
		t.Errorf("an image for another architecture: %v", err)
	}
	if _, err := Pull(ctx, "x", WithPlatform("linux")); err == nil {
		t.Error("WithPlatform(\"linux\") was accepted")
	}
}

func TestProgressBar(t *testing.T) {
	leakcheck.Check(t)
	reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{})
	ref := reg.Ref("test/multi:1")
	imagetest.Push(t, reg, ref, imagetest.MultiLayer(t, 1<<20))
	var buf bytes.Buffer
	if _, err := Pull(context.Background(), ref, WithCacheDir(t.TempDir()), WithProgress(ProgressBar(&buf))); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "\r[") || !strings.HasSuffix(out, "3/3 layers\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("progress bar drew %q", out)
	}
}

func TestPruneAndRemoveImage(t *testing.T) {
	leakcheck.Check(t)
	reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{})
	ref := reg.Ref("test/multi:1")
	imagetest.Push(t, reg, ref, imagetest.MultiLayer(t, 1<<20))
	ctx := context.Background()
	cache := WithCacheDir(t.TempDir())
	img, err := Pull(ctx, ref, cache)
	if err != nil {
		t.Fatal(err)
	}
	u, err := DiskUsage(ctx, cache)
	if err != nil || u.Images != 1 || u.Layers != 3 || u.Bytes < 1<<20 || u.Reclaimable != 0 {
		t.Errorf("DiskUsage = %+v, %v", u, err)
	}
	if r, err := Prune(ctx, cache); err != nil || r.Layers != 0 {
		t.Errorf("Prune with the image recorded = %+v, %v", r, err)
	}
	if err := RemoveImage(ctx, reg.Ref("test/other:1"), cache); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RemoveImage of an unknown image: %v", err)
	}
	if err := RemoveImage(ctx, ref, cache); err != nil {
		t.Fatal(err)
	}
	r, err := Prune(ctx, cache)
	if err != nil || r.Layers != 3 || r.Bytes != u.Bytes {
		t.Errorf("Prune = %+v, %v; want 3 layers, %d bytes", r, err, u.Bytes)
	}
	if _, err := Pull(ctx, ref, cache, WithPullPolicy(PullNever)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the removed image is still there: %v", err)
	}
	if _, err := img.rootfs(ctx, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rootfs of a pruned image: %v, want fs.ErrNotExist", err)
	}
	// By digest, after pulling again.
	if _, err := Pull(ctx, ref, cache); err != nil {
		t.Fatal(err)
	}
	if err := RemoveImage(ctx, img.Digest(), cache); err != nil {
		t.Fatal(err)
	}
	if r, err := Prune(ctx, cache); err != nil || r.Layers != 3 {
		t.Errorf("Prune after RemoveImage(digest) = %+v, %v", r, err)
	}
	if u, err := DiskUsage(ctx, cache); err != nil || u.Layers != 0 || u.Images != 0 {
		t.Errorf("DiskUsage after = %+v, %v", u, err)
	}
}

func TestScratch(t *testing.T) {
	leakcheck.Check(t)
	s := Scratch()
	layers, cfg := s.layersAndConfig()
	if len(layers) != 0 || cfg.OS != "linux" || s.Reference() != "scratch" || !strings.HasPrefix(s.Digest(), "sha256:") {
		t.Errorf("Scratch: %v %+v %s %s", layers, cfg, s.Reference(), s.Digest())
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := s.WriteOCILayout(context.Background(), dir, WithTag("empty")); err != nil {
		t.Fatal(err)
	}
	img, err := LoadOCILayout(context.Background(), dir, WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if layers, _ := img.layersAndConfig(); len(layers) != 0 || img.Reference() != "empty" {
		t.Errorf("scratch through a layout: %d layers, %q", len(layers), img.Reference())
	}
}
