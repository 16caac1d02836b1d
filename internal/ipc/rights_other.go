//go:build !unix

package ipc

import (
	"net"
	"os"
)

// canPassDescriptors reports whether Unix sockets here carry SCM_RIGHTS.
const canPassDescriptors = false

// oobSpace is the control-message space for one message's descriptors.
var oobSpace = 0

func recvWithRights(uc *net.UnixConn, p, oob []byte, files *[]*os.File) (int, error) {
	return uc.Read(p)
}

func sendWithRights(uc *net.UnixConn, b []byte, files []*os.File) error {
	return ErrNoDescriptorPassing
}
