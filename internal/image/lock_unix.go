//go:build unix

package image

import (
	"os"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"golang.org/x/sys/unix"
)

// tryLockFile takes a lock on path without waiting; errLocked when another
// holder has it.
func tryLockFile(path string, exclusive bool) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := fsutil.Flock(f, how|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, errLocked
		}
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return &fileLock{f: f}, nil
}
