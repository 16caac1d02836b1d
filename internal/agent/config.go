package agent

import "slices"

// EnvMarker, when set in the environment, makes the process an agent.
const EnvMarker = "CC_SANDBOX_AGENT"

// Descriptors the agent inherits when started by the namespace backend.
const (
	FdChannel = 3 // one end of an ipc channel: the host's connections arrive here
	FdConfig  = 4 // a SOCK_SEQPACKET socket: descriptors, then the Config as JSON (see SendConfig)
	FdStatus  = 5 // the agent writes "ok\n" when it serves, or a one-line error, then closes it
)

// Config is what the host tells the agent at start. Host directories come
// as descriptors (O_PATH), not paths: the sandbox's root user may not be
// allowed to walk the host paths that lead to them, and a descriptor cannot
// be swapped under it. The host opens them through /proc/PID/root of the
// agent, so they belong to the agent's own mount namespace (overlayfs and
// bind mounts refuse anything else), and sends them before the Config,
// which names them by their position among the descriptors sent. The agent
// closes them all before it serves, so nothing inside can reach the host
// through them.
type Config struct {
	// Layers are descriptors of the read-only layer directories, lowest
	// first.
	Layers []int
	// Upper and Work are the overlay's writable layer and work directory,
	// and Rootfs the empty directory the root is assembled at. The host
	// has already written /etc/hosts, /etc/resolv.conf and /etc/hostname
	// into Upper.
	Upper, Work, Rootfs int

	Binds    []Bind
	Hostname string
	// SingleID: only container id 0 is mapped (unprivileged host user), so
	// commands cannot switch to other users.
	SingleID bool
	// Unconfined leaves out the seccomp filter, the capability bounding
	// and no_new_privs (benchmarks compare with it; nothing else sets it).
	Unconfined bool
	// NoFile, when not zero, limits the open files of every process
	// (RLIMIT_NOFILE).
	NoFile uint64
	// Workload, when not nil, is where commands run: the cgroups that hold
	// the sandbox's limits, below the agent's own.
	Workload *Workload

	// Trace asks the agent to time its start's phases and report them on
	// the status line (see TracePrefix).
	Trace bool

	received []int    // every descriptor the host sent but Workload's, closed after setup
	phases   []string // name=time of each traced phase (see phase)
}

// Workload places the commands of a sandbox with limits in cgroups below
// the agent's own, so that the limits bind the commands and not the agent:
// a fork bomb exhausts the commands' pids budget, never the agent's
// threads. Every command is born in them: the thread that forks it joins
// them alone first and goes back after. The agent keeps these descriptors
// (close-on-exec) for its whole life.
type Workload struct {
	// Join are the files through which a thread joins the workload's
	// cgroups, one per hierarchy that holds a limit (v1 "tasks", v2
	// "cgroup.threads" of a threaded cgroup), opened for writing by the
	// host: the kernel checks such a write against whoever opened the
	// file. Back are those of the agent's own cgroups, in the same order.
	Join, Back []int
	// The limits, for errors that name them: 0 where none is set.
	PidsMax  int64
	MemoryMB uint64
}

// keptFds returns the descriptors the host sent that the agent keeps for
// its whole life (Workload's): whatever closes inherited descriptors must
// spare them.
func (c *Config) keptFds() []int {
	w := c.Workload
	if w == nil {
		return nil
	}
	return append(slices.Clone(w.Join), w.Back...)
}

// Bind mounts a host path (an inherited descriptor) at Path inside the
// sandbox.
type Bind struct {
	Source   int
	Dir      bool // the source is a directory
	Path     string
	Writable bool
}
