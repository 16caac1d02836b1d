// Package hvtest is the conformance suite every isolation backend of
// internal/hv passes. A backend's test calls Run with a way to make a
// sandbox's lowest layer; capability flags say which extra checks apply.
package hvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// Harness tells the suite how to use a backend.
type Harness struct {
	Backend hv.Backend
	// BaseLayer returns a layer directory holding a static busybox at
	// /bin/busybox and /bin/sh, owned as the backend's sandboxes need.
	BaseLayer func(t *testing.T) string
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"StartServeStop", testStartServeStop},
		{"ConcurrentConnections", testConcurrentConnections},
		{"Descriptors", testDescriptors},
		{"UpperDir", testUpperDir},
		{"Binds", testBinds},
		{"Hostname", testHostname},
		{"BadLayer", testBadLayer},
		{"NoLayers", testNoLayers},
		{"Command", testCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// start starts a sandbox of the base layer and connects to its agent; both
// end in cleanup.
func start(t *testing.T, h Harness, mutate func(*hv.Config)) (hv.Sandbox, *ipc.Client) {
	t.Helper()
	leakcheck.Check(t)
	cfg := &hv.Config{
		ID:       "hvtest",
		StateDir: stateDir(t),
		Layers:   []string{h.BaseLayer(t)},
		Hostname: "hvtest",
		IDMap:    idmap.Current(),
	}
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := h.Backend.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	c, err := ipc.Connect(ctx, sb.Dial)
	if err != nil {
		sb.Stop()
		t.Fatalf("connecting to the agent: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := sb.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return sb, c
}

// stateDir returns an empty directory the sandbox's root may use.
func stateDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.Chown(d, idmap.RootBase, idmap.RootBase)
	}
	return d
}

func testStartServeStop(t *testing.T, h Harness) {
	sb, c := start(t, h, nil)
	st, err := ipc.NewAgent(c).Stat(context.Background(), "/bin/busybox")
	if err != nil {
		t.Fatalf("stat /bin/busybox: %v", err)
	}
	if fi := st.Info; fi.Name != "busybox" || fi.Size == 0 {
		t.Fatalf("stat answer %+v", fi)
	}
	select {
	case <-sb.Done():
		t.Fatal("Done closed on a running sandbox")
	default:
	}
	if err := sb.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after Stop")
	}
	if err := sb.Err(); err != nil {
		t.Errorf("Err after Stop: %v", err)
	}
	if err := sb.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// The agent's connections break when the sandbox stops.
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not notice the sandbox stopped")
	}
	if _, err := ipc.NewAgent(c).Stat(context.Background(), "/"); !errors.Is(err, ipc.ErrTransport) && !errors.Is(err, ipc.ErrAlreadyClosed) {
		t.Errorf("call after Stop: %v", err)
	}
}

func testConcurrentConnections(t *testing.T, h Harness) {
	_, c := start(t, h, nil)
	a := ipc.NewAgent(c)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("/tmp-%d", i)
			errs <- a.Mkdir(context.Background(), p, 0o755)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func testDescriptors(t *testing.T, h Harness) {
	_, c := start(t, h, nil)
	a := ipc.NewAgent(c)
	if err := a.WriteFile(context.Background(), "/f", []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, f, err := a.OpenFile(context.Background(), ipc.OpenFileReq{Path: "/f", Flag: int32(os.O_RDONLY), WantFD: true})
	if err != nil {
		t.Fatal(err)
	}
	if f != nil {
		defer f.Close()
	}
	caps := h.Backend.Capabilities()
	if caps.PassesDescriptors != (f != nil) {
		t.Fatalf("PassesDescriptors %v, but the open answer carried the file: %v", caps.PassesDescriptors, f != nil)
	}
	if !caps.PassesDescriptors {
		return
	}
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "data" {
		t.Errorf("read through the passed descriptor: %q %v", b, err)
	}
}

func testUpperDir(t *testing.T, h Harness) {
	sb, c := start(t, h, nil)
	upper, err := sb.OpenUpper()
	if !h.Backend.Capabilities().HostUpperDir {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("OpenUpper without the capability: %v, want ErrUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer upper.Close()
	if err := ipc.NewAgent(c).WriteFile(context.Background(), "/new", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := upper.Lookup("new")
	if err != nil {
		t.Fatalf("a write does not show in the upper directory: %v", err)
	}
	defer n.Close()
	f, err := n.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != "x" {
		t.Errorf("a write does not show in the upper directory: %q %v", b, err)
	}
	// An unchanged lower file is not copied up: the upper has no bin, or
	// no busybox in it.
	bin, err := upper.Lookup("bin")
	if err != nil {
		return
	}
	defer bin.Close()
	d, err := bin.OpenDir()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if b, err := d.Lookup("busybox"); err == nil {
		b.Close()
		t.Error("an unchanged lower file was copied up")
	}
}

func testBinds(t *testing.T, h Harness) {
	ro, rw := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ro, "f"), []byte("host"), 0o644)
	if os.Geteuid() == 0 {
		os.Chown(rw, idmap.RootBase, idmap.RootBase)
	}
	_, c := start(t, h, func(cfg *hv.Config) {
		cfg.Binds = []hv.Bind{{HostPath: ro, Path: "/ro"}, {HostPath: rw, Path: "/deep/rw", Writable: true},
			{HostPath: filepath.Join(ro, "f"), Path: "/file"}}
	})
	a := ipc.NewAgent(c)
	for _, p := range []string{"/ro/f", "/file"} {
		b, err := a.ReadFile(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "host" {
			t.Errorf("read-only bind %s reads %q", p, b)
		}
	}
	if err := a.WriteFile(context.Background(), "/ro/g", nil, 0o644); err == nil {
		t.Error("wrote into a read-only bind")
	}
	if err := a.WriteFile(context.Background(), "/deep/rw/g", []byte("in"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "g")); err != nil || string(b) != "in" {
		t.Errorf("writable bind: %q %v", b, err)
	}
}

func testHostname(t *testing.T, h Harness) {
	_, c := start(t, h, func(cfg *hv.Config) { cfg.Hostname = "confhost" })
	b, err := ipc.NewAgent(c).ReadFile(context.Background(), "/proc/sys/kernel/hostname")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, []byte("confhost\n")) {
		t.Errorf("hostname %q", b)
	}
}

func testBadLayer(t *testing.T, h Harness) {
	leakcheck.Check(t)
	_, err := h.Backend.Start(context.Background(), &hv.Config{
		ID: "bad", StateDir: stateDir(t), Layers: []string{"/no/such/layer"}, IDMap: idmap.Current(),
	})
	if err == nil {
		t.Fatal("Start with a missing layer succeeded")
	}
}

func testNoLayers(t *testing.T, h Harness) {
	_, c := start(t, h, func(cfg *hv.Config) { cfg.Layers = nil })
	entries, err := ipc.NewAgent(c).ReadDir(context.Background(), "/")
	if err != nil {
		t.Fatalf("readdir of an empty root: %v", err)
	}
	if len(entries) == 0 {
		t.Error("an empty root has not even /proc")
	}
}

func testCommand(t *testing.T, h Harness) {
	_, c := start(t, h, nil)
	a := ipc.NewAgent(c)
	spec := ipc.CmdSpec{Path: "/bin/sh", Args: []string{"sh", "-c", "exit 7"}, Env: []string{"PATH=/bin"}}
	ans, _, err := a.CmdSpawn(context.Background(), &spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.CmdWait(context.Background(), ans.Handle, ipc.WaitRelease)
	if err != nil || !st.Exited || st.Code != 7 {
		t.Fatalf("exit status %+v %v", st, err)
	}
	// A request the agent cannot decode is refused, clearly.
	if _, err := c.Call(ipc.MsgCmdWait, nil); !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "malformed MsgCmdWait") {
		t.Errorf("a malformed wait: %v", err)
	}
}
