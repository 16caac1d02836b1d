//go:build !linux

package helper

import "syscall"

// controlUserTimeout does nothing where TCP_USER_TIMEOUT is missing: the
// keepalives alone notice a peer cut off.
func controlUserTimeout(_, _ string, _ syscall.RawConn) error { return nil }
