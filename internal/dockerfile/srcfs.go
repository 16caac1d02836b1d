package dockerfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// entry is one file of a source filesystem, as a COPY sees it.
type entry struct {
	mode     fs.FileMode // type and permission bits (setuid, setgid, sticky included)
	uid, gid int         // container ids
	size     int64
	mtime    time.Time
	link     string // a symlink's target
	host     string // the file on the host, to read its content
}

// srcFS is a read-only tree COPY and ADD read from: the build context or
// the root filesystem of a stage or an image. Paths are clean, relative
// and "/"-separated, "" being the root; they are taken as they are, with
// no symlink followed: resolve first.
type srcFS interface {
	// lstat describes rel; an error matching fs.ErrNotExist when it is
	// missing (or, in a context, left out by .dockerignore).
	lstat(rel string) (*entry, error)
	// readDir lists the names in the directory rel, sorted.
	readDir(rel string) ([]string, error)
}

// maxSymlinks bounds the symlinks one resolve follows, as Linux does.
const maxSymlinks = 40

// resolve follows the symlinks in rel inside fsys, as if fsys were the
// root directory: ".." never leaves it, absolute targets start at its
// root. The last element is followed only when followLast is true. The
// result names no symlink but, when followLast is false, its last
// element. Elements from the first missing one on are kept as they are.
func resolve(fsys srcFS, rel string, followLast bool) (string, error) {
	parts := splitRel(rel)
	cur := ""
	hops := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = parentRel(cur)
			continue
		}
		next := joinRel(cur, name)
		if len(parts) == 0 && !followLast {
			return next, nil
		}
		e, err := fsys.lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return joinRel(next, strings.Join(parts, "/")), nil
		}
		if err != nil {
			return "", err
		}
		if e.mode.Type() != fs.ModeSymlink {
			if len(parts) > 0 && !e.mode.IsDir() {
				return "", &fs.PathError{Op: "resolve", Path: "/" + next, Err: syscall.ENOTDIR}
			}
			cur = next
			continue
		}
		if hops++; hops > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: "/" + rel, Err: syscall.ELOOP}
		}
		if strings.HasPrefix(e.link, "/") {
			cur = ""
		}
		parts = append(splitRel(e.link), parts...)
	}
	return cur, nil
}

func splitRel(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

func parentRel(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinRel(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// cleanRel turns a path (absolute or not) into a clean relative one, ""
// for the root. ".." cannot climb above the root.
func cleanRel(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// Host files the builder itself reads (a context's .dockerignore, an
// image's /etc/passwd and /etc/group, the client's context as it sends
// it) are found by an lstat of a path resolve made free of symlinks,
// in trees no sandbox writes: store layers and build contexts (a RUN's
// bind mounts are copies). They are opened all the same as if the file
// could have been swapped since: never through a symlink, never waiting
// on a pipe, and checked again once open.

// errNotRegular is the error of a file that is not, or no longer, a
// regular file as it is opened.
var errNotRegular = errors.New("not a regular file")

// errTooLong is readRegular's error for a file longer than it reads.
var errTooLong = errors.New("too long")

// openRegular opens the regular file at host for reading (see above).
// Its errors name no host path.
func openRegular(host string) (*os.File, error) {
	f, err := os.OpenFile(host, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, pathless(err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errNotRegular
	}
	return f, nil
}

// readRegular reads the regular file at host (see openRegular), of at
// most max bytes: a longer one is errTooLong.
func readRegular(host string, max int64) ([]byte, error) {
	f, err := openRegular(host)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	switch {
	case err != nil:
		return nil, pathless(err)
	case int64(len(data)) > max:
		return nil, errTooLong
	}
	return data, nil
}

// pathless returns the error a *fs.PathError carries, without the host
// path it names.
func pathless(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}
