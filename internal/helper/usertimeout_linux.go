package helper

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout is how long data a network helper's connection sent may go
// unacknowledged before the connection fails (TCP_USER_TIMEOUT): the
// keepalives cover idle connections, this one those that are writing
// when the peer is cut off.
var userTimeout = 10 * time.Second // a variable: tests shorten it

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

// streamUserTimeout lifts userTimeout from a connection that became a
// stream its peer reads at its own pace: the helper's end of a sandbox's
// streams and of a build's events, the client's end of a sandbox's
// streams. A stream's reader may stop reading for as long as it likes (a
// program that reads a command's output later), and the kernel would
// abort a connection whose peer keeps its window closed for longer than
// the user timeout, answered probes or not. A sandbox's stream whose peer
// is cut off ends with the sandbox, whose own connections notice (see
// whileRunning and ipc.Client.CloseOnEnd). An upload keeps the timeout:
// nothing else would end it when the helper is cut off, and a helper
// reads what it is sent without pause.
func streamUserTimeout(c net.Conn) {
	c, _ = beneath(c)
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 0) })
		}
	}
}
