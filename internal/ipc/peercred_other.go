//go:build !linux && !darwin

package ipc

import (
	"errors"
	"net"
)

// peerCred cannot tell who is at the other end of a socket on this system:
// there, only the private socket directory (SocketDir) keeps other users
// out.
func peerCred(c net.Conn) (uid, pid int, err error) {
	return -1, -1, errors.ErrUnsupported
}
