package hv

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenBindSource opens b.HostPath O_PATH as seen from root (a process's
// /proc/PID/root, or "" for this process's view) and returns the
// descriptor, which the caller owns, and whether it is a directory. A
// Resolved bind is opened with openat2(RESOLVE_NO_SYMLINKS) beneath a
// descriptor of root, so that a symlink anywhere in the path, its last
// component included, put there after the path was checked, fails the
// open rather than being followed. Errors are *fs.PathError naming
// b.HostPath.
func OpenBindSource(root string, b Bind) (fd int, dir bool, err error) {
	const flags = unix.O_PATH | unix.O_CLOEXEC
	if !b.Resolved {
		fd, err = unix.Open(root+b.HostPath, flags, 0)
	} else {
		fd, err = openBeneath(root, b.HostPath, flags)
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

// openBeneath opens the absolute path p beneath root ("/" when "")
// following no symlink.
func openBeneath(root, p string, flags int) (int, error) {
	if root == "" {
		root = "/"
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(rfd)
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(rfd, rel, &unix.OpenHow{Flags: uint64(flags),
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH})
}
