package ipc

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the user id and process id of the process at the other
// end of c, as the kernel recorded them when the connection was made (for
// a client: when the server called listen). It returns an error for
// anything but a Unix socket.
func peerCred(c net.Conn) (uid, pid int, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, -1, errors.New("not a Unix socket")
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return -1, -1, err
	}
	var cred *unix.Ucred
	cerr := rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return -1, -1, cerr
	}
	if err != nil {
		return -1, -1, err
	}
	return int(cred.Uid), int(cred.Pid), nil
}
