package ipc

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the user id and process id of the process at the other
// end of c (LOCAL_PEERCRED and LOCAL_PEERPID). It returns an error for
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
	var cred *unix.Xucred
	cerr := rc.Control(func(fd uintptr) {
		if cred, err = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED); err == nil {
			pid, err = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
		}
	})
	if cerr != nil {
		return -1, -1, cerr
	}
	if err != nil {
		return -1, -1, err
	}
	return int(cred.Uid), pid, nil
}
