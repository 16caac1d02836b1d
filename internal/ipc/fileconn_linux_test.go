package ipc

import (
	"net"
	"os"
)

// fileConn turns a socket descriptor into a net.Conn.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	return net.FileConn(f)
}
