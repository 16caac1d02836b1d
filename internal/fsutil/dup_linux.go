package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// DupFile returns a new descriptor, close-on-exec, for f's open file,
// named name. It goes through the raw descriptor: f.Fd would make the
// shared file description blocking, which a poller of f (the egress stack
// on a TAP or frame link) cannot take. The error is the system's.
func DupFile(f *os.File, name string) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	cerr := rc.Control(func(raw uintptr) { fd, err = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}
