package agent

import (
	"errors"
	"fmt"
	"os"
	"runtime"
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
// harden returns a spawnThread whose bounding set is cut to keptCaps and
// whose ambient and inheritable sets are empty; every sandboxed process
// must be forked on it. The agent's other threads keep what they need.
// harden runs after setup; allowed syscalls stay allowed.
func harden(allowed ...string) (*spawnThread, error) {
	t, err := newSpawnThread()
	if err != nil {
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("making the agent undumpable: %w", err)
	}
	if err := installSeccomp(allowed...); err != nil {
		return nil, err
	}
	return t, nil
}

// spawnThread is the one OS thread that sandboxed processes are forked
// from, with its capabilities cut (see harden). It lives as long as the
// agent.
type spawnThread struct{ calls chan func() }

// newSpawnThread starts the thread and cuts its capabilities; it returns
// why they could not be cut.
func newSpawnThread() (*spawnThread, error) {
	t := &spawnThread{calls: make(chan func())}
	errc := make(chan error)
	go func() {
		// Never unlocked: should the goroutine end, the thread ends too,
		// and no other goroutine runs with its credentials.
		runtime.LockOSThread()
		if err := dropCaps(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range t.calls {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return t, nil
}

// run runs f on the thread and returns when it has returned. A nil
// thread (an unconfined agent) runs f on the caller's.
func (t *spawnThread) run(f func()) {
	if t == nil {
		f()
		return
	}
	done := make(chan struct{})
	t.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// dropCaps cuts the calling thread's bounding set to keptCaps and clears
// its ambient and inheritable capabilities.
func dropCaps() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	keep := map[int]bool{}
	for _, c := range keptCaps {
		keep[c] = true
	}
	for c := 0; c <= last; c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clearing inheritable capabilities: %w", err)
	}
	return nil
}

// lastCap returns the highest capability this kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading cap_last_cap: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
