package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestRemoteByContent: what exists only on this machine (a Dockerfile
// built here, an image loaded from a layout, a snapshot) runs on a network
// helper with a store of its own, which is sent the layers it lacks and
// nothing it holds already: a second client of the same build sends no
// layer, nor does the loaded base image the build stood on. A snapshot of
// the host image cannot go: its base is this host.
func TestRemoteByContent(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s := startNetHelper(t, p, "-store", t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte("from the context\n"), 0o644)
	b, err := buildDockerfile(t, "FROM busybox\nRUN echo built > /built && mkdir /d && ln -s /built /d/link\nCOPY f.txt /f.txt\n", dir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := DialRemote(ctx, s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	inst, err := alice.New(ctx, b.snap)
	if err != nil {
		t.Fatal(err)
	}
	out, err := inst.Command("cat", "/built", "/f.txt", "/d/link").Output()
	if want := "built\nfrom the context\nbuilt\n"; err != nil || string(out) != want {
		t.Errorf("the built files on the helper: %q, %v; want %q", out, err, want)
	}
	inst.Close()
	sent := s.LayersReceived()
	if layers := len(b.snap.info.Layers); layers < 2 || sent != uint64(layers) {
		t.Errorf("the helper was sent %d layers of a build of %d", sent, layers)
	}

	bob, err := DialRemote(ctx, s.Addr().String(), p.client("bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	again, err := bob.New(ctx, b.snap)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, again)
	again.Close()
	base, err := bob.New(ctx, busyboxImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := base.Command("test", "!", "-e", "/built").CombinedOutput(); err != nil {
		t.Errorf("the base image on the helper has the build's file: %q, %v", out, err)
	}
	base.Close()
	if n := s.LayersReceived(); n != sent {
		t.Errorf("the helper was sent %d more layers, of content it held", n-sent)
	}

	host := hostInstance(t)
	snap, err := host.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, err := alice.New(ctx, snap); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a snapshot of the host image on a helper: %v, want errors.ErrUnsupported", err)
	}
}
