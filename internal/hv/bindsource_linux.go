package hv

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenBindSource opens b.HostPath O_PATH as seen from root (a process's
// /proc/PID/root, or "" for this process's). A Resolved bind is opened
// with openat2(RESOLVE_NO_SYMLINKS) beneath a descriptor of root, so a
// symlink anywhere in the path, put there after the path was checked,
// fails the open rather than being followed. It returns the descriptor and
// whether it is a directory.
func OpenBindSource(root string, b Bind, dir bool) (int, bool, error) {
	flags := unix.O_PATH | unix.O_CLOEXEC
	if dir {
		flags |= unix.O_DIRECTORY
	}
	var fd int
	var err error
	if !b.Resolved {
		fd, err = unix.Open(root+b.HostPath, flags, 0)
	} else {
		base := "/"
		if root != "" {
			base = root
		}
		var rfd int
		rfd, err = unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			rel := strings.TrimLeft(b.HostPath, "/")
			if rel == "" {
				rel = "."
			}
			fd, err = unix.Openat2(rfd, rel, &unix.OpenHow{Flags: uint64(flags),
				Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH})
			unix.Close(rfd)
		}
	}
	if err != nil {
		return -1, false, &os.PathError{Op: "open", Path: b.HostPath, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, false, &os.PathError{Op: "fstat", Path: b.HostPath, Err: err}
	}
	return fd, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}
