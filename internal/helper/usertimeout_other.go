//go:build !linux

package helper

import (
	"net"
	"syscall"
)

// controlUserTimeout does nothing where TCP_USER_TIMEOUT is missing: the
// keepalives alone notice a peer cut off.
func controlUserTimeout(_, _ string, _ syscall.RawConn) error { return nil }

// streamUserTimeout does nothing where there is no TCP_USER_TIMEOUT.
func streamUserTimeout(net.Conn) {}
