package helper

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpClosed reports whether the kernel has closed c's TCP connection (a
// reset, or keepalives unanswered: state TCP_CLOSE), or c can no longer
// be asked.
func tcpClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	if err := rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		closed = err == nil && info.State == unix.BPF_TCP_CLOSE
	}); err != nil {
		return true // closed on this side
	}
	return closed
}
