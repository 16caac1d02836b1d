package agent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// What the agent detaches from before anything else: the host program's
// session, whose controlling terminal may be a user's (a process in that
// session can open it as /dev/tty and, where the kernel allows TIOCSTI,
// type into it).

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
