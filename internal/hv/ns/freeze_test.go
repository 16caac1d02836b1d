package ns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/hv/hvtest"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// startWith starts a sandbox of backend b over the busybox layer, with
// mutate's changes to its config, and connects to its agent; both end in
// cleanup. With limits, where this user can have no cgroups, it checks
// that Start says so and skips the test.
func startWith(t *testing.T, b Backend, mutate func(*hv.Config)) (*sandbox, *ipc.Client) {
	t.Helper()
	leakcheck.Check(t)
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.Chown(state, idmap.RootBase, idmap.RootBase)
	}
	cfg := &hv.Config{ID: "freeze-" + filepath.Base(t.Name()), StateDir: state, Layers: []string{hvtest.BusyboxLayer(t)}, Hostname: "t", IDMap: idmap.Current()}
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := b.Start(ctx, cfg)
	if err != nil && os.Geteuid() != 0 && (cfg.PidsMax > 0 || cfg.MemoryMB > 0) {
		if !strings.Contains(err.Error(), "cgroup") {
			t.Fatalf("Start with limits: %v, want an error naming cgroups", err)
		}
		t.Skipf("no cgroups for this user here: %v", err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	c, err := ipc.Connect(ctx, sb.Dial)
	if err != nil {
		sb.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := sb.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return sb.(*sandbox), c
}

// spawn starts script under sh in the sandbox, its output discarded.
func spawn(t *testing.T, c *ipc.Client, script string) {
	t.Helper()
	spec := ipc.CmdSpec{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"}}
	if _, _, err := ipc.NewAgent(c).CmdSpawn(context.Background(), &spec, nil); err != nil {
		t.Fatalf("starting %q: %v", script, err)
	}
}

// TestFreeze: Freeze stops every process of a sandbox: a busy loop stops
// advancing its counter, and a loop that forks a new process for every
// line it writes stops too (a child born during the freeze is born
// frozen). Thaw lets both run on, and a frozen sandbox still stops. Where
// this user can have no freezer cgroup, the sandbox works and Freeze says
// what is missing, wrapping errors.ErrUnsupported.
func TestFreeze(t *testing.T) {
	t.Run("host", func(t *testing.T) { testFreeze(t, Backend{}) })
	t.Run("v1-only", func(t *testing.T) { testFreeze(t, Backend{cgroups: cgroupV1Only}) })
}

func testFreeze(t *testing.T, b Backend) {
	sb, c := startWith(t, b, nil)
	spawn(t, c, "i=0; while :; do i=$((i+1)); echo $i >/tmp/count; done")
	spawn(t, c, "while :; do sh -c 'echo x >>/tmp/forks'; done")
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(sb.upper, "tmp", name)) // a test: the sandbox is ours
		return string(b)
	}
	// moves waits, bounded, until both files change.
	moves := func() bool {
		count, forks := read("count"), len(read("forks"))
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if read("count") != count && len(read("forks")) != forks {
				return true
			}
		}
		return false
	}
	if !moves() {
		t.Fatal("the loops never ran")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := sb.Freeze(ctx)
	if errors.Is(err, errors.ErrUnsupported) && os.Geteuid() != 0 {
		if !strings.Contains(err.Error(), "cgroup") {
			t.Errorf("Freeze without a freezer: %v, want it to name what is missing", err)
		}
		if !moves() {
			t.Error("the sandbox without a freezer does not run")
		}
		t.Skipf("no freezer for this user here: %v", err)
	}
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	count, forks := read("count"), read("forks")
	for range 30 {
		time.Sleep(10 * time.Millisecond)
		if read("count") != count || read("forks") != forks {
			t.Fatal("a process of the frozen sandbox ran")
		}
	}
	if err := sb.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if !moves() {
		t.Fatal("the thawed sandbox does not run")
	}
	// A frozen sandbox stops (a task frozen by the v1 freezer cannot die
	// until thawed).
	if err := sb.Freeze(ctx); err != nil {
		t.Fatalf("Freeze again: %v", err)
	}
	dirs := append([]string(nil), sb.cgroup.dirs...)
	if err := sb.Stop(); err != nil {
		t.Fatalf("Stop of a frozen sandbox: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s after Stop: %v", d, err)
		}
	}
}
