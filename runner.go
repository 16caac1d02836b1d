package sandbox

import (
	"os"
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// runner is what an Instance runs on: the engine in this process, or a
// helper process (see remote.go). Everything else an Instance does goes
// through Client, in the agent's protocol, whichever it is.
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
