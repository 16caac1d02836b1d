//go:build !linux

package ipc

import "syscall"

// hostErrno converts a Linux errno from the wire into this host's value.
// Numbers differ between systems, so only the code's sentinel is kept here.
func hostErrno(linux uint32) (syscall.Errno, bool) {
	return 0, false
}

// linuxErrno converts this host's errno into its Linux value for the wire.
// Numbers differ between systems, so none is sent.
func linuxErrno(e syscall.Errno) uint32 {
	return 0
}
