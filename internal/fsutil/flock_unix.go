//go:build unix

package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// Flock applies flock(2) operation how (unix.LOCK_SH, LOCK_EX or LOCK_UN,
// possibly with LOCK_NB) to f, resuming after signals. The lock belongs to
// f's open file description: two opens of one file exclude each other even
// within a process, and the kernel drops the lock when its holder dies. It
// returns flock's error (unix.EWOULDBLOCK when LOCK_NB finds it held).
func Flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}
