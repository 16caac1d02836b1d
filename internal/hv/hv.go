// Package hv defines the isolation backends behind one small interface.
//
// # Vocabulary
//
//   - backend: a way to isolate (Linux namespaces, a virtual machine);
//   - sandbox: one running isolated environment, started by a backend;
//   - agent: the process serving the sandbox from inside (internal/agent),
//     reached through connections the sandbox's Dial opens;
//   - layers: read-only directories in overlay format, lowest first, that
//     make the sandbox's root together with a private writable layer.
//
// Nothing in this package or above it knows which backend runs: the engine
// picks one, and everything else speaks the agent's protocol.
package hv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/untrusted"
)

// Backend starts sandboxes.
type Backend interface {
	// Name names the backend ("ns", "vm").
	Name() string
	// Start starts a sandbox described by cfg and returns once its agent
	// accepts connections. It returns an error wrapping
	// ipc.ErrHypervisorUnavailable when the host lacks what the backend
	// needs, naming the missing feature.
	Start(ctx context.Context, cfg *Config) (Sandbox, error)
	// Capabilities says what this backend can do.
	Capabilities() Capabilities
}

// Capabilities are what backends do differently.
type Capabilities struct {
	// PassesDescriptors: connections to the agent carry file
	// descriptors, so files, pipes and sockets are used natively.
	PassesDescriptors bool
	// HostUpperDir: the writable layer is a host directory
	// (Sandbox.OpenUpper), read in place for snapshots.
	HostUpperDir bool
	// OwnKernel: the sandbox runs its own kernel.
	OwnKernel bool
	// AgentServesUntilDone: the agent serves until the sandbox ends, not
	// until its client's first connection closes, and Done reports the
	// end; the client keeps no connection open only to watch the agent.
	AgentServesUntilDone bool
}

// MaxMemoryMB is the largest memory limit a sandbox may have (1 PiB): its
// bytes (MemoryMB<<20), and a network helper's int64 sums of its clients'
// limits, cannot wrap.
const MaxMemoryMB = 1 << 30

// MaxDiskMB is the largest writable layer a sandbox may ask for (1 PiB),
// for the same reason: its bytes (a VM's disk image is DiskMB<<20 long)
// must not wrap.
const MaxDiskMB = 1 << 30

// Config describes a sandbox to start.
type Config struct {
	ID       string
	StateDir string   // an empty private directory the sandbox may use; removed by the caller after Stop
	Layers   []string // read-only layer directories, lowest first
	Binds    []Bind   // host paths mounted into the sandbox
	Hostname string
	IDMap    idmap.Map

	MemoryMB uint64  // 0: no limit (a VM: the backend's default size); at most MaxMemoryMB
	CPUs     float64 // 0: no limit (a VM: the backend's default count)
	PidsMax  int64   // 0: no limit
	NoFile   uint64  // open files per process; 0: the host's limit
	DiskMB   uint64  // the writable layer's size; 0: no limit
	// Unconfined leaves out the seccomp filter and the capability
	// bounding (benchmarks compare with it).
	Unconfined bool
	// Network says the sandbox may get egress. Backends whose network
	// device must exist from the start (a VM's NIC) attach one, down and
	// unconfigured; others ignore it.
	Network bool

	// CacheDir is where a backend may keep files across sandboxes (the
	// VM's generated initramfs); "" means the SDK's default cache
	// directory.
	CacheDir string
	// Kernel is the guest kernel of backends that boot one (a vmlinuz
	// file or an unpacked kernel package); "" means the backend looks
	// for one itself. Backends that share the host's kernel ignore it.
	Kernel string

	Logger *slog.Logger
	// Clock, when not nil, times the start's phases (see Trace).
	Clock *Clock
}

// Bind mounts a host path into the sandbox.
type Bind struct {
	HostPath string
	Path     string // absolute path inside the sandbox
	Writable bool
	// Resolved says HostPath has been checked with its symlinks resolved
	// (a network helper's allowMounts): the backend must open it
	// following none, so that a component someone swaps for a link after
	// the check (a sandbox writing in an allowed directory can) fails the
	// start instead of leading the bind elsewhere (OpenBindSource).
	Resolved bool
}

// Sandbox is one running sandbox.
type Sandbox interface {
	// Dial opens a new connection to the agent.
	Dial(ctx context.Context) (net.Conn, error)
	// Done is closed once the sandbox has stopped, for whatever reason.
	Done() <-chan struct{}
	// Err reports why the sandbox stopped, after Done: nil after Stop,
	// an error matching ipc.ErrOutOfMemory when it was killed for memory,
	// or what went wrong.
	Err() error
	// Kill starts stopping the sandbox: it kills everything in it and
	// returns without waiting. Err then reports nil.
	Kill()
	// Stop kills everything in the sandbox and waits until it is gone.
	// It is safe to call more than once.
	Stop() error
	// OpenUpper opens the writable layer on the host, when the backend
	// keeps it there (Capabilities.HostUpperDir), as an untrusted tree:
	// the sandbox writes it, so the host reads it through descriptors
	// only. Without the capability it returns an error wrapping
	// errors.ErrUnsupported.
	OpenUpper() (*untrusted.Dir, error)
	// Pid is the host pid of the sandbox's first process, or 0.
	Pid() int
}

// NetworkLinker is implemented by sandboxes that can give the host the
// device of their egress network.
type NetworkLinker interface {
	// OpenLink creates the sandbox's egress device, named ifname inside,
	// and returns the host's descriptor of it: a TAP device carrying
	// ethernet frames, removed when the descriptor is closed. It returns
	// ErrLinkViaAgent when only the agent can create it.
	OpenLink(ifname string) (*os.File, error)
}

// OOMCounter is implemented by sandboxes that can tell how many of their
// processes the kernel killed for memory.
type OOMCounter interface {
	OOMKills() int
}

// Freezer is implemented by sandboxes whose processes the host can freeze.
type Freezer interface {
	// Freeze stops every process of the sandbox and returns once all are
	// frozen. Where the host cannot (no freezer cgroup the caller may
	// write), it returns an error wrapping errors.ErrUnsupported that
	// names what is missing.
	Freeze(ctx context.Context) error
	// Thaw lets the sandbox's processes run again.
	Thaw() error
}

// Channeler is implemented by sandboxes whose agent is reached through an
// ipc channel (see ipc.NewChannel) that another process may share.
type Channeler interface {
	// Channel returns a duplicate of the host's end of the channel.
	Channel() (*os.File, error)
}

// ErrLinkViaAgent says the sandbox's agent must create the egress device
// itself (the host process lacks the privilege to do it from outside).
var ErrLinkViaAgent = errors.New("the egress device must be created by the agent")

// StopGrace is how long a backend waits for its sandbox to end after the
// kill before reporting a failure.
const StopGrace = 10 * time.Second
