package agent

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// What the agent detaches from before anything else: the host program's
// session, whose controlling terminal may be a user's (a process in that
// session can open it as /dev/tty and, where the kernel allows TIOCSTI,
// type into it), and the descriptors it inherited without meaning to.

// newSession makes the agent the leader of a new session, without a
// controlling terminal; every command then starts a session of its own
// (see start). It is not an error for the agent to lead its session
// already (the first process of a virtual machine may).
func newSession() error {
	if _, err := unix.Setsid(); err != nil {
		if sid, serr := unix.Getsid(0); serr == nil && sid == os.Getpid() {
			return nil
		}
		return fmt.Errorf("starting a new session: %w", err)
	}
	return nil
}

// closeInherited closes every descriptor above 2 that came through exec
// and is not one of keep. Everything this program opens is close-on-exec
// (the Go runtime's and the os package's descriptors, and the agent's
// own), so a descriptor without that flag came from whoever started the
// host program (a shell's redirection, a supervisor's socket) and would
// reach the sandbox's commands. It runs before the agent opens anything
// of its own.
func closeInherited(keep ...int) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing inherited descriptors: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("listing inherited descriptors: %w", err)
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 || slices.Contains(keep, fd) {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // the listing's own descriptor (gone now), or one of ours
		}
		unix.Close(fd)
	}
	return nil
}
