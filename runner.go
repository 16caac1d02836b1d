package sandbox

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// runner is what an Instance runs on: the engine in this process
// (localRunner), or a helper process (*helper.Remote), chosen by
// ipc.UseHelper. Both start from the same engine.Spec. Everything else an
// Instance does goes through Client, in the agent's protocol, whichever it
// is.
type runner interface {
	ID() string
	// Client serves the agent's protocol for the instance.
	Client() *ipc.Client
	// PassesFDs reports whether answers from Client can carry
	// descriptors end to end.
	PassesFDs() bool
	Done() <-chan struct{}
	Err() error
	Close() error
	// SetTimeout stops the sandbox d from now, with a reason matching
	// ErrTimeout; it replaces any earlier timeout.
	SetTimeout(d time.Duration) error
	// OpenLink creates the egress device (see hv.NetworkLinker); it
	// returns hv.ErrLinkViaAgent when the agent must create it.
	OpenLink(ifname string) (*os.File, error)
	// Pid is the host pid of the sandbox's agent.
	Pid() int
	// OOMKills returns how many processes the kernel killed for memory.
	OOMKills() int
	// Snapshot captures the sandbox's changes into store on top of
	// parent (see engine.Instance.Snapshot).
	Snapshot(ctx context.Context, store *image.Store, excludes []string, parent snapshot.Parent, log *slog.Logger) (*snapshot.Info, error)
}

var (
	_ runner = localRunner{}
	_ runner = (*helper.Remote)(nil)
)

// forceProxy makes instances in a helper forward every call through it
// even where the agent's channel could be shared (tests use it to exercise
// the forwarding path).
var forceProxy = false

// startRunner starts the instance spec describes, in this process or in
// a helper (unless inProcess).
func startRunner(ctx context.Context, inProcess bool, spec engine.Spec) (runner, error) {
	if ipc.UseHelper() && !inProcess {
		r, err := helper.Start(ctx, spec, helper.Options{Proxy: forceProxy})
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	e, err := engine.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return localRunner{e}, nil
}

// localRunner runs an instance in this process.
type localRunner struct {
	*engine.Instance
}

func (r localRunner) PassesFDs() bool {
	return r.Client().CanPassDescriptors() && r.Capabilities().PassesDescriptors
}

func (r localRunner) OpenLink(ifname string) (*os.File, error) {
	l, ok := r.Sandbox().(hv.NetworkLinker)
	if !ok {
		return nil, hv.ErrLinkViaAgent
	}
	return l.OpenLink(ifname)
}

func (r localRunner) Pid() int { return r.Sandbox().Pid() }

func (r localRunner) OOMKills() int {
	if c, ok := r.Sandbox().(hv.OOMCounter); ok {
		return c.OOMKills()
	}
	return 0
}
