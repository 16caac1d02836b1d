package agent

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

	received []int // every descriptor the host sent, closed after setup
}

// Bind mounts a host path (an inherited descriptor) at Path inside the
// sandbox.
type Bind struct {
	Source   int
	Dir      bool // the source is a directory
	Path     string
	Writable bool
}
