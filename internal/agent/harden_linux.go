package agent

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// keptCaps bound the capabilities of every process a sandbox runs:
// Docker's default set, less CAP_NET_RAW (no raw sockets). Root inside a
// sandbox gets these; other users none.
var keptCaps = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER, unix.CAP_MKNOD,
	unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE,
}

// CapBound is the capability bounding set sandboxed processes have, as
// /proc/PID/status shows it (CapBnd).
func CapBound() uint64 {
	var m uint64
	for _, c := range keptCaps {
		m |= 1 << c
	}
	return m
}

// harden confines everything the agent will start. Process-wide: the
// agent becomes undumpable (nothing in the sandbox can ptrace it or open
// its /proc entries), and no_new_privs and the seccomp filter apply to
// every thread and every future child. Per thread: capabilities belong to
// a thread, and a child inherits those of the thread that forked it, so
// harden returns a capCut that cuts the bounding set of a thread to
// keptCaps, and empties its ambient and inheritable sets, before any
// sandboxed process is forked on it. harden runs after setup; allowed
// syscalls stay allowed. It returns why the capabilities cannot be cut or
// the filter cannot be installed.
//
// For gVisor (forGVisor), no_new_privs and the filter go on each thread with its
// capability cut instead, before the first process is forked on it (the
// calling thread at once): a child inherits them from the thread that
// forks it, so every sandboxed process has them all the same, while the
// agent's other threads, which start nothing, go without. gVisor asks for
// it: it recomputes a filter's per-syscall verdicts for every thread a
// filter is synchronised to, about a millisecond a thread, which cost
// 5-7 ms of each gVisor sandbox's start.
//
// For gVisor the filter also guards the agent against SIGKILL and SIGSTOP
// from the sandbox (see filterProgram's guardInit).
func harden(forGVisor bool, allowed ...string) (*capCut, error) {
	prog, err := seccompFilter(forGVisor, allowed...)
	if err != nil {
		return nil, err
	}
	c := &capCut{}
	if forGVisor {
		c.filter = prog
	}
	if err := c.prepare(); err != nil {
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("making the agent undumpable: %w", err)
	}
	if !forGVisor {
		if err := installSeccomp(prog, unix.SECCOMP_FILTER_FLAG_TSYNC); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// hardenEarly runs harden(true) on a goroutine of its own, beside the
// gVisor agent's setup, and returns a channel that yields the capability
// cut (nil, and no harden at all, when unconfined) or why it failed. Its
// thread is cut and filtered there, off the main thread, which does the
// setup's mounts during package init and never forks: a filter binds its
// own thread only. In gVisor, where installing a filter on a thread takes
// about a millisecond, the cut then costs the start nothing, and the
// first command, which often forks on that same thread, does not pay for
// it either.
func hardenEarly(unconfined bool) <-chan hardened {
	ch := make(chan hardened, 1)
	go func() {
		var h hardened
		if !unconfined {
			h.caps, h.err = harden(true)
		}
		ch <- h
	}()
	return ch
}

// hardened is what hardenEarly yields.
type hardened struct {
	caps *capCut
	err  error
}

// capCut cuts the capabilities of the threads that sandboxed processes
// are forked on, each thread the first time one is forked on it: handing
// every fork to one dedicated thread would cost two thread wake-ups per
// command. A cut changes nothing for the agent itself: only the bounding,
// ambient and inheritable sets shrink, and those act at exec, which the
// agent never does. A cut cannot be undone, so a cut thread stays cut for
// whatever goroutine runs on it later.
type capCut struct {
	// drop lists the capabilities to take out of a thread's bounding set.
	// Every thread starts with the same set, so the last one (dropped
	// last) is still there exactly on the threads not yet cut.
	drop []int
	// filter, when not nil, is the seccomp filter a thread gets with its
	// cut, with no_new_privs (see harden's forGVisor).
	filter *unix.SockFprog
}

// prepare finds what to cut and cuts the calling thread, so that a
// missing privilege shows at start rather than at the first command.
func (c *capCut) prepare() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for n := 0; n <= last; n++ {
		if slices.Contains(keptCaps, n) {
			continue
		}
		if in, err := inBounding(n); err == nil && in {
			c.drop = append(c.drop, n)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return c.cutThread()
}

// fork runs f, which forks, on the calling goroutine's thread, cut first.
// A nil capCut (an unconfined agent) runs f as it is. It returns why the
// thread could not be cut; f has not run then.
func (c *capCut) fork(f func()) error {
	if c == nil {
		f()
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := c.cutThread(); err != nil {
		return err
	}
	f()
	return nil
}

// cutThread cuts the calling thread, unless it is cut already; the caller
// has locked its goroutine to the thread.
func (c *capCut) cutThread() error {
	if c.filter != nil && !filtered() {
		if err := installSeccomp(c.filter, 0); err != nil {
			return err
		}
	}
	if c.isCut() {
		return nil
	}
	// Ambient and inheritable first, the bounding set last: a thread whose
	// last bounding capability is gone is cut entirely.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr, data, err := capSets()
	if err != nil {
		return err
	}
	if data[0].Inheritable|data[1].Inheritable != 0 {
		data[0].Inheritable, data[1].Inheritable = 0, 0
		if err := unix.Capset(hdr, &data[0]); err != nil {
			return fmt.Errorf("clearing inheritable capabilities: %w", err)
		}
	}
	for _, n := range c.drop {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", n, err)
		}
	}
	return nil
}

// isCut reports whether the calling thread has been cut: with something to
// drop, whether the last of it is gone (one syscall); otherwise whether the
// inheritable set, and with it the ambient set, is empty.
func (c *capCut) isCut() bool {
	if len(c.drop) > 0 {
		in, err := inBounding(c.drop[len(c.drop)-1])
		return err == nil && !in
	}
	_, data, err := capSets()
	return err == nil && data[0].Inheritable|data[1].Inheritable == 0
}

// inBounding reports whether capability n is in the calling thread's
// bounding set.
func inBounding(n int) (bool, error) {
	in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0)
	return in == 1, err
}

// capSets reads the calling thread's capability sets, for Capset.
func capSets() (*unix.CapUserHeader, *[2]unix.CapUserData, error) {
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(hdr, &data[0]); err != nil {
		return nil, nil, fmt.Errorf("reading capabilities: %w", err)
	}
	return hdr, &data, nil
}

// lastCap returns the highest capability this kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading cap_last_cap: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
