package image

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// openBeneath opens the directory rel (clean, "" for dir itself) below the
// directory descriptor dirfd as an O_PATH descriptor, refusing symlinks
// anywhere on the way and any path that would leave dirfd.
func openBeneath(dirfd int, rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ENOSYS {
			return openBeneathWalk(dirfd, rel)
		}
		return fd, err
	}
}

// openBeneathWalk does what openBeneath does on kernels without openat2,
// one component at a time with O_NOFOLLOW.
func openBeneathWalk(dirfd int, rel string) (int, error) {
	cur, err := unix.Openat(dirfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if rel == "." {
		return cur, nil
	}
	start := 0
	for start <= len(rel) {
		end := start
		for end < len(rel) && rel[end] != '/' {
			end++
		}
		elem := rel[start:end]
		start = end + 1
		if elem == "" || elem == "." {
			continue
		}
		if elem == ".." {
			unix.Close(cur)
			return -1, unix.EXDEV
		}
		next, err := unix.Openat(cur, elem, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// xattrUnsupported reports whether a setxattr error means the filesystem
// or the caller's privileges cannot keep the attribute (so it is lost, not
// a failure).
func xattrUnsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// syncFS flushes the filesystem that holds path to disk.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}
