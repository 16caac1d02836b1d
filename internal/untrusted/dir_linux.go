package untrusted

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// beneath is how every entry is looked up: one name, below its directory,
// following no symlink of any kind, never crossing onto another mount.
var beneath = unix.OpenHow{
	Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
}

// ErrNoOpenat2 matches the error of Open on kernels without openat2.
var ErrNoOpenat2 = errors.New("reading a sandbox's files safely needs openat2 (Linux 5.6 or later)")

// Dir is an open directory of an untrusted tree.
type Dir struct {
	fd   int    // O_RDONLY|O_DIRECTORY; owned
	path string // its path in the tree ("/" for the root), for errors
}

// Open opens the root of an untrusted tree. root is a host path the caller
// made (the tree's parents are the host's); it must not be a symlink. It
// returns an error wrapping ErrNoOpenat2 on kernels without openat2.
func Open(root string) (*Dir, error) {
	// treelint:trusted-path the root is the host's, below it nothing is
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	// Probe openat2 once per tree: it is the whole defence.
	probe, err := unix.Openat2(fd, ".", &beneath)
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOSYS) {
			return nil, fmt.Errorf("%s: %w", root, ErrNoOpenat2)
		}
		return nil, &fs.PathError{Op: "openat2", Path: root, Err: err}
	}
	unix.Close(probe)
	return &Dir{fd: fd, path: "/"}, nil
}

// Path returns the directory's path inside the tree.
func (d *Dir) Path() string { return d.path }

// Close closes the directory.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Stat returns the directory's own metadata.
func (d *Dir) Stat() (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return nil, d.err("fstat", "", err)
	}
	return &st, nil
}

// Names returns the names of the directory's entries, sorted.
func (d *Dir) Names() ([]string, error) {
	// A descriptor of our own for the read, so the offset starts at 0.
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, d.err("open", "", err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, d.err("readdirent", "", err)
	}
	slices.Sort(names)
	return names, nil
}

// Lookup opens the entry name (one path component) of the directory
// without following it, whatever it is. The returned Node must be closed.
func (d *Dir) Lookup(name string) (*Node, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, d.err("lookup", name, unix.EINVAL)
	}
	fd, err := unix.Openat2(d.fd, name, &beneath)
	if err != nil {
		return nil, d.err("lookup", name, err)
	}
	n := &Node{fd: fd, path: path.Join(d.path, name)}
	if err := unix.Fstat(fd, &n.st); err != nil {
		unix.Close(fd)
		return nil, d.err("fstat", name, err)
	}
	return n, nil
}

// Xattrs returns the directory's extended attributes that keep accepts,
// sorted by name.
func (d *Dir) Xattrs(keep func(string) bool) ([][2]string, error) {
	x, err := xattrs(d.fd, keep)
	if err != nil {
		return nil, d.err("listxattr", "", err)
	}
	return x, nil
}

func (d *Dir) err(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: path.Join(d.path, name), Err: err}
}

// Node is one entry of an untrusted tree, held open: everything done with
// it acts on the inode Lookup found, whatever the sandbox renames since.
type Node struct {
	fd   int // O_PATH; owned
	st   unix.Stat_t
	path string
}

// Path returns the entry's path inside the tree.
func (n *Node) Path() string { return n.path }

// Stat returns the entry's metadata, as it was at Lookup.
func (n *Node) Stat() *unix.Stat_t { return &n.st }

// Type returns the entry's file type bits (unix.S_IFREG, S_IFDIR, ...).
func (n *Node) Type() uint32 { return n.st.Mode & unix.S_IFMT }

// Close closes the entry.
func (n *Node) Close() error {
	if n.fd < 0 {
		return nil
	}
	err := unix.Close(n.fd)
	n.fd = -1
	return err
}

// OpenDir opens the entry, a directory, for reading. Without root, a
// directory its owner (the caller) locked is opened up for the moment of
// the open and locked again.
func (n *Node) OpenDir() (*Dir, error) {
	if n.Type() != unix.S_IFDIR {
		return nil, n.err("open", unix.ENOTDIR)
	}
	var fd int
	err := n.unlocked(0o500, func() (err error) {
		fd, err = unix.Openat(n.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, n.err("open", err)
	}
	return &Dir{fd: fd, path: n.path}, nil
}

// Open opens the entry, a regular file, for reading, as OpenDir does a
// directory.
func (n *Node) Open() (*os.File, error) {
	if n.Type() != unix.S_IFREG {
		return nil, n.err("open", unix.EINVAL)
	}
	var fd int
	err := n.unlocked(0o400, func() (err error) {
		// Reopening through /proc/self/fd reaches exactly this inode.
		fd, err = unix.Open(fdPath(n.fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, n.err("open", err)
	}
	return os.NewFile(uintptr(fd), n.path), nil
}

// Readlink returns the target of the entry, a symlink.
func (n *Node) Readlink() (string, error) {
	if n.Type() != unix.S_IFLNK {
		return "", n.err("readlink", unix.EINVAL)
	}
	buf := make([]byte, unix.PathMax)
	k, err := unix.Readlinkat(n.fd, "", buf)
	if err != nil {
		return "", n.err("readlink", err)
	}
	if k >= len(buf) {
		return "", n.err("readlink", unix.ENAMETOOLONG)
	}
	return string(buf[:k]), nil
}

// Xattrs returns the entry's extended attributes that keep accepts, sorted
// by name.
func (n *Node) Xattrs(keep func(string) bool) ([][2]string, error) {
	// /proc/self/fd/N of an O_PATH descriptor names its inode, a symlink
	// included (the magic link ends there), so the path calls act on it.
	x, err := xattrs(n.fd, keep)
	if err != nil {
		return nil, n.err("listxattr", err)
	}
	return x, nil
}

// unlocked runs open; when it fails for want of permission and the caller
// is the entry's unprivileged owner, it adds need to the owner's bits for
// the moment of open and restores them. The chmod goes through the
// entry's descriptor, so it can only ever touch this inode.
func (n *Node) unlocked(need uint32, open func() error) error {
	err := open()
	if !errors.Is(err, unix.EACCES) || os.Geteuid() == 0 || n.st.Uid != uint32(os.Geteuid()) {
		return err
	}
	mode := n.st.Mode & 0o7777
	if cerr := unix.Chmod(fdPath(n.fd), mode|need); cerr != nil {
		return err
	}
	defer unix.Chmod(fdPath(n.fd), mode)
	return open()
}

func (n *Node) err(op string, err error) error {
	return &fs.PathError{Op: op, Path: n.path, Err: err}
}

// fdPath names descriptor fd itself for the calls that take only a path.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// xattrs lists the extended attributes of the file fd (any descriptor,
// O_PATH included: /proc/self/fd/N names its inode, a symlink included, as
// the magic link ends there) that keep accepts, sorted. A file system
// without extended attributes has none.
func xattrs(fd int, keep func(string) bool) ([][2]string, error) {
	size, err := unix.Listxattr(fdPath(fd), nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	for {
		k, err := unix.Listxattr(fdPath(fd), buf)
		if errors.Is(err, unix.ERANGE) { // grew meanwhile
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		buf = buf[:k]
		break
	}
	var out [][2]string
	for _, name := range strings.Split(strings.TrimRight(string(buf), "\x00"), "\x00") {
		if name == "" || !keep(name) {
			continue
		}
		v, err := getxattr(fd, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, [2]string{name, string(v)})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out, nil
}

// getxattr reads one attribute of the file fd, whatever its size.
func getxattr(fd int, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		k, err := unix.Getxattr(fdPath(fd), name, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Getxattr(fdPath(fd), name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, max(size, 2*len(buf)))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:k], nil
	}
}
