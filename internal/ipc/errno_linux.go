package ipc

import "syscall"

// hostErrno converts a Linux errno from the wire into this host's value.
func hostErrno(linux uint32) (syscall.Errno, bool) {
	if linux == 0 {
		return 0, false
	}
	return syscall.Errno(linux), true
}

// linuxErrno converts this host's errno into its Linux value for the wire.
func linuxErrno(e syscall.Errno) uint32 {
	return uint32(e)
}
