package helper

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout is how long data a network helper's connection sent may go
// unacknowledged before the connection fails (TCP_USER_TIMEOUT): the
// keepalives cover idle connections, this one those that are writing
// when the peer is cut off.
const userTimeout = 10 * time.Second

// controlUserTimeout sets userTimeout on a socket before it connects or
// listens (net.Dialer.Control, net.ListenConfig.Control; accepted
// connections inherit it).
func controlUserTimeout(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout.Milliseconds()))
	})
	if err != nil {
		return err
	}
	return serr
}
