package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// ErrPeerRefused is returned when the process at the other end of a
// socket is not one this side accepts: another user's, for a helper.
var ErrPeerRefused = errors.New("ipc: peer refused")

// checkSameUser returns nil when the process at the other end of c runs as
// this process's effective user or as root, and an error matching
// ErrPeerRefused otherwise. Where the system cannot tell (see peerCred),
// it returns nil: the private socket directory is the only guard there.
func checkSameUser(c net.Conn) error {
	uid, pid, err := peerCred(c)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: its credentials: %v", ErrPeerRefused, err)
	}
	if uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%w: pid %d runs as uid %d, this process as %d", ErrPeerRefused, pid, uid, os.Geteuid())
	}
	return nil
}

// checkPeerPid returns nil when the process at the other end of c is pid,
// or when the system cannot tell (see peerCred); otherwise an error
// matching ErrPeerRefused that says what pid was expected to be (want:
// "the helper this process started", "the process this helper serves").
// Another process of the same user is refused too.
func checkPeerPid(c net.Conn, pid int, want string) error {
	_, got, err := peerCred(c)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: its credentials: %v", ErrPeerRefused, err)
	}
	if got != pid {
		return fmt.Errorf("%w: pid %d is at the other end, not %s (pid %d)", ErrPeerRefused, got, want, pid)
	}
	return nil
}
