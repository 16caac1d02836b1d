package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/egress"
	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Source is what New starts a sandbox from: an *Image (from Pull,
// LoadOCILayout, LoadDockerArchive or Scratch) or a *HostImage.
type Source interface {
	// rootfs returns the layers, the host binds and the image config of
	// the source, materialised in the store of o.
	rootfs(ctx context.Context, o *storeOptions) (*rootfsSpec, error)
}

// rootfsSpec is a source made ready for a sandbox.
type rootfsSpec struct {
	layers []string  // lowest first
	binds  []hv.Bind // host paths the source itself needs (HostImage)
	config runConfig
	parent snapshotParent // what a snapshot of the instance stands on
}

// Instance is a running sandbox: an isolated Linux environment with its own
// root filesystem, processes and network. It is an fs.FS over the sandbox's
// files (see fs.go), runs commands (Command), and is safe for concurrent
// use. Close it when done: it stops everything inside and removes its
// writable layer.
type Instance struct {
	id     string
	runner runner     // the engine here, or a helper process
	agent  *ipc.Agent // the agent's protocol for this instance
	fdOK   bool       // the agent's answers can carry descriptors
	ids    idmap.Map

	defaults runConfig      // the image's config with the options applied
	parent   snapshotParent // the source, for snapshots

	closeOnce sync.Once
	closeErr  error
	lease     *image.Lease // keeps the source's layers in the store until Close; nil: none

	netMu     sync.Mutex
	sockets   []io.Closer // guarded by netMu: listeners and packet sockets to close with the instance
	netClosed bool        // guarded by netMu

	opts     newOptions // as New resolved them
	dialer   DialFunc   // nil: the default dialer
	egressMu sync.Mutex
	egress   *egress.Stack // guarded by egressMu; nil while egress is off
	closing  bool          // guarded by egressMu: Close has begun; egress stays off

	forwardSlots chan struct{} // one token a connection its Forwards hold (maxForwardConns)
}

// newOptions configures New.
type newOptions struct {
	storeOptions
	memoryMB uint64
	cpus     float64
	timeout  time.Duration
	user     string
	env      []string
	workDir  string
	hostname string
	mounts   []hv.Bind
	backend  Backend
	kernel   string // WithKernel (vm_options.go)
	pidsMax  int64
	noFile   uint64
	diskMB   uint64
	// unconfined: no seccomp filter or capability bounding (benchmarks).
	unconfined bool
	network    bool
	dialer     DialFunc
	resolver   *net.Resolver // nil: net.DefaultResolver
	noFDs      bool          // tests: use the streamed paths even where descriptors pass
	// inProcess starts the sandbox in this process whatever UseHelper
	// says: a network helper's build, whose steps' snapshots call back
	// into it (snapshot.Parent.BeforeAdd), which cannot cross to a helper.
	inProcess bool
}

// Backend names a way to isolate sandboxes.
type Backend string

// The backends.
const (
	// BackendNamespaces runs sandboxes in Linux namespaces over an
	// overlayfs root: fast, shares the host kernel.
	BackendNamespaces Backend = "ns"
	// BackendVM runs each sandbox in its own QEMU virtual machine, with
	// KVM where /dev/kvm is usable and TCG emulation otherwise.
	BackendVM Backend = "vm"
	// BackendGVisor runs each sandbox on gVisor's user-space kernel
	// (runsc): the workload never calls the host kernel directly. It needs
	// a runsc: import github.com/ccsandbox/sandbox/gvisor, or CC_RUNSC or
	// $PATH.
	BackendGVisor Backend = "gvisor"
)

// WithBackend chooses the isolation backend. The default is the CC_BACKEND
// environment variable ("ns", "vm" or "gvisor"), or else BackendNamespaces.
func WithBackend(b Backend) Option {
	return instanceOption(func(o *newOptions) error {
		if b == "" {
			return errors.New("WithBackend: empty backend")
		}
		o.backend = b
		return nil
	})
}

// instanceOption is an Option made of a function over newOptions.
type instanceOption func(*newOptions) error

func (f instanceOption) applyNew(o *newOptions) error { return f(o) }

// WithMemoryMB limits the sandbox's memory (all its processes together) to
// mb mebibytes, at most 1 PiB (2^30). New fails when the host cannot
// enforce it (no cgroup memory controller, or no permission to use one).
func WithMemoryMB(mb uint64) Option {
	return instanceOption(func(o *newOptions) error {
		if mb == 0 {
			return errors.New("WithMemoryMB: zero memory")
		}
		if mb > hv.MaxMemoryMB { // its bytes (mb<<20) would wrap, and a helper's ledger with them
			return fmt.Errorf("WithMemoryMB: %d MB: at most %d", mb, hv.MaxMemoryMB)
		}
		o.memoryMB = mb
		return nil
	})
}

// WithCPUs limits the sandbox to the CPU time of n CPUs (n may be
// fractional). New fails when the host cannot enforce it.
func WithCPUs(n float64) Option {
	return instanceOption(func(o *newOptions) error {
		if !(n > 0) {
			return fmt.Errorf("WithCPUs: %v CPUs", n)
		}
		o.cpus = n
		return nil
	})
}

// WithPidsLimit bounds the number of processes and threads in the sandbox
// (a fork bomb stays inside). New fails when the host has no cgroup pids
// controller to enforce it. On the gVisor backend, which counts a task
// until it exits rather than until it is reaped, zombies a process never
// reaps do not count: pair it with WithMemoryMB there, which bounds what
// they hold.
func WithPidsLimit(n int64) Option {
	return instanceOption(func(o *newOptions) error {
		if n <= 0 {
			return fmt.Errorf("WithPidsLimit: %d", n)
		}
		o.pidsMax = n
		return nil
	})
}

// WithOpenFiles bounds the open files of every process in the sandbox
// (RLIMIT_NOFILE). It cannot go above the host's own hard limit. The
// sandbox's agent runs under it too: where descriptors do not pass (a VM,
// gVisor, a network helper, or a host that cannot pass them) it holds two
// for each connection the host has accepted from, dialed into or
// forwarded from the sandbox, and while those take its room the host's
// calls to the sandbox fail, until some end.
func WithOpenFiles(n uint64) Option {
	return instanceOption(func(o *newOptions) error {
		if n == 0 {
			return errors.New("WithOpenFiles: zero")
		}
		o.noFile = n
		return nil
	})
}

// WithDiskMB bounds the size of the sandbox's writable layer, at most 1 PiB
// (hv.MaxDiskMB; more is an error). Backends
// that cannot enforce it (the namespace backend on a file system without
// project quotas) make New fail with an error wrapping
// errors.ErrUnsupported.
func WithDiskMB(mb uint64) Option {
	return instanceOption(func(o *newOptions) error {
		if mb == 0 {
			return errors.New("WithDiskMB: zero")
		}
		if mb > hv.MaxDiskMB { // a VM's disk of mb<<20 bytes would wrap
			return fmt.Errorf("WithDiskMB: %d MB: at most %d", mb, hv.MaxDiskMB)
		}
		o.diskMB = mb
		return nil
	})
}

// WithTimeout stops the sandbox d after it starts (for a Pool's sandboxes,
// d after Pool.New hands them out); Wait then returns, and Err reports, an
// error matching ErrTimeout.
func WithTimeout(d time.Duration) Option {
	return instanceOption(func(o *newOptions) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: %v", d)
		}
		o.timeout = d
		return nil
	})
}

// WithUser sets the user commands run as, unless a Cmd sets its own: a name
// from the sandbox's /etc/passwd, a uid, or user:group. It overrides the
// image's User.
func WithUser(user string) Option {
	return instanceOption(func(o *newOptions) error {
		if user == "" {
			return errors.New("WithUser: empty user")
		}
		o.user = user
		return nil
	})
}

// WithEnv adds KEY=value variables to the environment of every command,
// over the image's Env.
func WithEnv(env ...string) Option {
	return instanceOption(func(o *newOptions) error {
		for _, kv := range env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
				return fmt.Errorf("WithEnv: %q is not KEY=value", kv)
			}
		}
		o.env = append(o.env, env...)
		return nil
	})
}

// WithWorkDir sets the directory commands start in, unless a Cmd sets Dir.
// It must be absolute; it overrides the image's WorkingDir.
func WithWorkDir(dir string) Option {
	return instanceOption(func(o *newOptions) error {
		if !path.IsAbs(dir) {
			return fmt.Errorf("WithWorkDir: %q is not absolute", dir)
		}
		o.workDir = dir
		return nil
	})
}

// WithHostname sets the sandbox's hostname (default: its id).
func WithHostname(name string) Option {
	return instanceOption(func(o *newOptions) error {
		if name == "" || len(name) > 64 || strings.ContainsAny(name, "/ \t\n\x00") {
			return fmt.Errorf("WithHostname: invalid hostname %q", name)
		}
		o.hostname = name
		return nil
	})
}

// WithMount makes the host directory or file hostPath visible, read-only,
// at sandboxPath inside the sandbox.
func WithMount(hostPath, sandboxPath string) Option {
	return mountOption(hostPath, sandboxPath, false)
}

// WithWritableMount makes hostPath visible and writable at sandboxPath.
// Writes from the sandbox land on the host; they are made with the
// sandbox's root user's host identity.
func WithWritableMount(hostPath, sandboxPath string) Option {
	return mountOption(hostPath, sandboxPath, true)
}

func mountOption(hostPath, sandboxPath string, writable bool) Option {
	return instanceOption(func(o *newOptions) error {
		abs, err := filepath.Abs(hostPath)
		if err != nil {
			return err
		}
		if !path.IsAbs(sandboxPath) || path.Clean(sandboxPath) == "/" {
			return fmt.Errorf("WithMount: sandbox path %q must be absolute and not /", sandboxPath)
		}
		o.mounts = append(o.mounts, hv.Bind{HostPath: abs, Path: path.Clean(sandboxPath), Writable: writable})
		return nil
	})
}

// New starts a sandbox from source and returns once it is ready to run
// commands. It returns an error wrapping ErrHypervisorUnavailable (naming
// the missing feature) when this host cannot run sandboxes, and an error
// for any option the sandbox cannot honour.
func New(ctx context.Context, source Source, opts ...Option) (*Instance, error) {
	if source == nil {
		return nil, errors.New("sandbox.New: nil source")
	}
	o, err := resolveNewOptions(opts)
	if err != nil {
		return nil, err
	}
	inst, err := start(ctx, source, o)
	return inst, hv.AsLimit(err)
}

// resolveNewOptions applies opts over the defaults.
func resolveNewOptions(opts []Option) (newOptions, error) {
	var o newOptions
	for _, opt := range opts {
		if err := opt.applyNew(&o); err != nil {
			return o, err
		}
	}
	return o, o.setDefaults()
}

// start starts a sandbox from source as o says; New and Pool share it.
func start(ctx context.Context, source Source, o newOptions) (*Instance, error) {
	name := string(o.backend)
	if name == "" {
		name = os.Getenv("CC_BACKEND")
	}
	backend, err := engine.LookupBackend(name) // a helper gets its name
	if err != nil {
		return nil, fmt.Errorf("sandbox.New: %w", err)
	}
	if o.kernel != "" && !backend.Capabilities().OwnKernel {
		return nil, fmt.Errorf("sandbox.New: WithKernel needs a backend with its own kernel (BackendVM), not %q", backend.Name())
	}
	rs, err := source.rootfs(ctx, &o.storeOptions)
	if err != nil {
		return nil, err
	}
	// The source's layers stay in the store while the sandbox runs on them,
	// whatever happens to the image or snapshot that named them (removed,
	// closed, then a Prune, here or in another process).
	var lease *image.Lease
	if st := rs.parent.store; st != nil && len(rs.parent.layers) > 0 {
		if lease, err = st.Lease(ctx, rs.parent.layers); err != nil {
			return nil, fmt.Errorf("sandbox.New: %w", err)
		}
	}
	run, err := startRunner(ctx, o.inProcess, engine.Spec{
		Backend:    backend,
		Layers:     rs.layers,
		Binds:      append(append([]hv.Bind(nil), rs.binds...), o.mounts...),
		Hostname:   o.hostname,
		MemoryMB:   o.memoryMB,
		CPUs:       o.cpus,
		PidsMax:    o.pidsMax,
		NoFile:     o.noFile,
		DiskMB:     o.diskMB,
		Timeout:    o.timeout,
		Unconfined: o.unconfined,
		Network:    o.network,
		StateRoot:  filepath.Join(o.cacheDir, "instances"),
		CacheDir:   o.cacheDir,
		Kernel:     o.kernel,
		Logger:     o.logger,
	})
	if err != nil {
		lease.Release()
		return nil, fmt.Errorf("sandbox.New: %w", err)
	}
	inst := newInstanceOn(run, rs.config.withOptions(&o), rs.parent, o)
	inst.lease = lease
	if o.network {
		if err := inst.SetNetworkEnabled(true); err != nil {
			inst.Close()
			return nil, fmt.Errorf("sandbox.New: %w", err)
		}
	}
	return inst, nil
}

// newInstanceOn makes the Instance of a started runner (New, Remote.New).
func newInstanceOn(run runner, defaults runConfig, parent snapshotParent, o newOptions) *Instance {
	inst := &Instance{
		id:       run.ID(),
		runner:   run,
		agent:    ipc.NewAgent(run.Client()),
		fdOK:     run.PassesFDs() && !o.noFDs,
		ids:      idmap.Current(),
		defaults: defaults,
		parent:   parent,
		opts:     o,
		dialer:   o.dialer,

		forwardSlots: make(chan struct{}, maxForwardConns),
	}
	// Listeners and packet sockets handed out are the host's own sockets:
	// nothing can reach them once the sandbox is gone, so close them then.
	go func() {
		<-run.Done()
		inst.closeSockets()
	}()
	return inst
}

// ID returns the sandbox's id, unique on this host.
func (i *Instance) ID() string { return i.id }

// Done returns a channel that is closed once the sandbox has stopped:
// closed, timed out, or ended some other way.
func (i *Instance) Done() <-chan struct{} { return i.runner.Done() }

// Err returns why the sandbox stopped: nil while it runs and after Close,
// an error matching ErrTimeout when WithTimeout expired, or what else ended
// it.
func (i *Instance) Err() error { return i.runner.Err() }

// Wait blocks until the sandbox stops or ctx ends, and returns what Err
// returns then (or ctx.Err()).
func (i *Instance) Wait(ctx context.Context) error {
	select {
	case <-i.runner.Done():
		return i.runner.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops every process in the sandbox, waits until they are gone and
// removes the sandbox's writable layer. It is safe to call more than once;
// later calls return the first call's result.
func (i *Instance) Close() error {
	i.closeOnce.Do(func() {
		// The sandbox stops first: a SetNetworkEnabled waiting on an agent
		// that never answers (sandbox code can stop a gVisor agent's
		// threads; a VM's guest can ignore the call) holds egressMu until
		// the agent's session ends, and closeEgress takes egressMu.
		i.closeErr = i.runner.Close()
		i.closeEgress()
		// Its listeners and packet sockets go once the sandbox has: a
		// streamed one's Close then asks nothing of an agent that might
		// never answer.
		i.closeSockets()
		i.lease.Release()
	})
	return i.closeErr
}

// alive returns an error matching ErrNotRunning (or the reason the sandbox
// stopped) once it has stopped, so calls on a stopped sandbox fail clearly.
func (i *Instance) alive() error {
	select {
	case <-i.runner.Done():
		if err := i.runner.Err(); err != nil {
			return err
		}
		return fmt.Errorf("sandbox %s is closed: %w", i.id, ErrNotRunning)
	default:
		return nil
	}
}
