package sandbox

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// TestStartTrace: a trace in New's context gets the start's phases, from
// the host and from the agent, in order, none negative, together no
// longer than New took.
func TestStartTrace(t *testing.T) {
	if ipc.UseHelper() {
		t.Skip("the trace is a hook of the engine in this process; a helper starts the sandbox elsewhere")
	}
	var names []string
	var sum time.Duration
	ctx := hv.WithTrace(context.Background(), &hv.Trace{Phase: func(name string, d time.Duration) {
		if d < 0 {
			t.Errorf("phase %q lasted %v", name, d)
		}
		names = append(names, name)
		sum += d
	}})
	start := time.Now()
	inst, err := New(ctx, HostImage(), WithCacheDir(testCache))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	for _, want := range []string{"state dir", "cgroup", "agent exec", "agent init", "mount overlay", "mount bind /usr", "mount proc", "pivot", "agent serve", "connect"} {
		if !slices.Contains(names, want) {
			t.Errorf("no phase %q in %q", want, names)
		}
	}
	if names[len(names)-1] != "connect" {
		t.Errorf("last phase %q, want connect: %q", names[len(names)-1], names)
	}
	if sum > took {
		t.Errorf("phases add up to %v, more than New's %v", sum, took)
	}
	if err := inst.Command("true").Run(); err != nil {
		t.Fatal(err)
	}
}
