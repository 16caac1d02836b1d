package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// testCache is the layer store every test shares, so images are unpacked
// once per run.
var testCache string

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role))
	}
	dir, err := os.MkdirTemp("", "cc-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// withoutDescriptors makes an instance use its streamed paths (messages and
// streams instead of passed descriptors), as a VM backend must.
func withoutDescriptors() Option {
	return instanceOption(func(o *newOptions) error { o.noFDs = true; return nil })
}

// ioModes are the two ways an instance moves data, tested alike.
var ioModes = []struct {
	name string
	opts []Option
}{
	{"descriptors", nil},
	{"streamed", []Option{withoutDescriptors()}},
}

// newInstance starts a sandbox for a test, closes it in cleanup, and checks
// that nothing it started outlives it.
func newInstance(t testing.TB, src Source, opts ...Option) *Instance {
	t.Helper()
	leakcheck.Check(t, socketPrefix(os.Getpid())) // this process's sockets
	opts = append([]Option{WithCacheDir(testCache)}, opts...)
	inst, err := New(context.Background(), src, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := inst.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return inst
}

// socketPrefix is the path prefix of the helper sockets of process pid
// (see ipc.SocketPath).
func socketPrefix(pid int) string {
	dir, err := ipc.SocketDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, fmt.Sprintf("cc-%d-", pid))
}

// hostInstance starts a sandbox of the host image.
func hostInstance(t testing.TB, opts ...Option) *Instance {
	t.Helper()
	return newInstance(t, HostImage(), opts...)
}

// run runs a shell command in inst and returns its combined output,
// failing the test on error.
func run(t testing.TB, inst *Instance, script string) string {
	t.Helper()
	out, err := inst.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

var busyboxOnce struct {
	sync.Once
	img *Image
	err error
}

// busyboxImage loads the busybox test image (Debian's busybox-static; see
// internal/testutil/testimage) into the shared test store, once.
func busyboxImage(t testing.TB) *Image {
	t.Helper()
	img, err := loadBusybox()
	if err != nil {
		t.Fatalf("the busybox test image: %v", err)
	}
	return img
}

// loadBusybox is busyboxImage for callers without a testing.TB.
func loadBusybox() (*Image, error) {
	busyboxOnce.Do(func() {
		src, err := testimage.Busybox()
		if err != nil {
			busyboxOnce.err = err
			return
		}
		dir, err := os.MkdirTemp("", "busybox-layout-")
		if err != nil {
			busyboxOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		if err := testimage.WriteLayout(dir, src, "busybox"); err != nil {
			busyboxOnce.err = err
			return
		}
		busyboxOnce.img, busyboxOnce.err = LoadOCILayout(context.Background(), dir, WithCacheDir(testCache))
	})
	return busyboxOnce.img, busyboxOnce.err
}

// buildBases counts the bases buildBase has made in this process.
var buildBases atomic.Int64

// buildBase loads into the shared test store a copy of src that differs
// from every earlier one of this process in its creation time alone, and
// so in its digest: builds over it find nothing that an earlier run of the
// same test (go test -count) left in the build cache.
func buildBase(t testing.TB, src v1.Image) *Image {
	t.Helper()
	img, err := mutate.CreatedAt(src, v1.Time{Time: time.Unix(buildBases.Add(1), 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return loadInStore(t, img, testCache)
}

// loadInStore loads img, as "busybox", into the layer store at cache
// through an OCI layout in a temporary directory.
func loadInStore(t testing.TB, img v1.Image, cache string) *Image {
	t.Helper()
	layout := t.TempDir()
	if err := testimage.WriteLayout(layout, img, "busybox"); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadOCILayout(context.Background(), layout, WithCacheDir(cache))
	if err != nil {
		t.Fatalf("loading an image into %s: %v", cache, err)
	}
	return loaded
}

// startAwaiting starts cmd and reads the first line of its output, which
// must be want, failing the test otherwise: the command has then got as
// far as printing it.
func startAwaiting(t *testing.T, cmd *Cmd, want string) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != want+"\n" {
		t.Fatalf("the first line of %q: %q, %v; want %q", cmd.Args, line, err, want)
	}
}
