package sandbox

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// TestImagesAndOpenImage lists a store holding a pulled and a loaded
// image, reopens each by digest and starts a sandbox from one, and checks
// that removal takes an image off the list and makes OpenImage fail.
func TestImagesAndOpenImage(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/demo/busybox:1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, src); err != nil {
		t.Fatal(err)
	}
	pulled, err := Pull(ctx, ref, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := src.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Cmd = []string{"true"}
	other, err := mutate.Config(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	loaded := loadInStore(t, other, cache)

	list, err := Images(ctx, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("Images lists %d images, want 2: %+v", len(list), list)
	}
	// The pulled image has a reference, so it comes first.
	if got := list[0]; got.Digest != pulled.Digest() || len(got.References) != 1 || got.References[0] != pulled.Reference() {
		t.Errorf("first image = %+v, want digest %s with reference %s", got, pulled.Digest(), pulled.Reference())
	}
	if got := list[1]; got.Digest != loaded.Digest() || len(got.References) != 0 {
		t.Errorf("second image = %+v, want digest %s and no reference", got, loaded.Digest())
	}
	for _, info := range list {
		if info.Platform != "linux/"+runtime.GOARCH || info.Layers != 1 || info.Size <= 0 {
			t.Errorf("image %s: platform %q, %d layers, %d bytes; want linux/%s, 1 layer, some bytes", info.Digest, info.Platform, info.Layers, info.Size, runtime.GOARCH)
		}
	}

	img, err := OpenImage(ctx, loaded.Digest(), WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest() != loaded.Digest() || strings.Join(img.Config().Cmd, " ") != "true" {
		t.Errorf("OpenImage gave %s with Cmd %q, want %s with Cmd [true]", img.Digest(), img.Config().Cmd, loaded.Digest())
	}
	inst := newInstance(t, img, WithCacheDir(cache))
	if out := run(t, inst, "echo opened"); out != "opened\n" {
		t.Errorf("a sandbox of the reopened image printed %q", out)
	}

	if err := RemoveImage(ctx, pulled.Digest(), WithCacheDir(cache)); err != nil {
		t.Fatal(err)
	}
	if list, err = Images(ctx, WithCacheDir(cache)); err != nil || len(list) != 1 || list[0].Digest != loaded.Digest() {
		t.Errorf("after RemoveImage, Images = %+v, %v; want only %s", list, err, loaded.Digest())
	}
	if _, err := OpenImage(ctx, pulled.Digest(), WithCacheDir(cache)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenImage of a removed image: %v, want fs.ErrNotExist", err)
	}
	if _, err := OpenImage(ctx, "sha256:nothex", WithCacheDir(cache)); err == nil {
		t.Error("OpenImage of a malformed digest succeeded")
	}
}

// TestPruneSparesRunningSandboxes: a sandbox's lower layers stay in the
// store while it runs, whatever happens to the image that named them
// (removed here, or by cc rmi in another process sharing the store):
// Prune took them from under the running sandbox, whose /bin then listed
// nothing. Once the sandbox is closed, Prune takes them.
func TestPruneSparesRunningSandboxes(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	img := loadInStore(t, src, cache)
	inst := newInstance(t, img, WithCacheDir(cache))
	if err := RemoveImage(ctx, img.Digest(), WithCacheDir(cache)); err != nil {
		t.Fatal(err)
	}
	if r, err := Prune(ctx, WithCacheDir(cache)); err != nil || r.Layers != 0 {
		t.Errorf("Prune while a sandbox runs on the image's layer: %+v, %v; want no layer removed", r, err)
	}
	if out, err := inst.Command("sh", "-c", "ls /bin | wc -l").Output(); err != nil || strings.TrimSpace(string(out)) == "0" {
		t.Errorf("the sandbox's /bin after Prune: %q, %v", out, err)
	}
	inst.Close()
	if r, err := Prune(ctx, WithCacheDir(cache)); err != nil || r.Layers != 1 {
		t.Errorf("Prune once the sandbox is closed: %+v, %v; want the image's layer removed", r, err)
	}
}
