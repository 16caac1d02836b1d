package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/untrusted"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// The content hash of a layer directory: for every entry, in path order,
// then for the root itself (its mode and owner are the mode and owner of
// "/" where the layer is on top), its path, type, permission bits, owner,
// size, content digest, link target, device numbers and the extended
// attributes a layer keeps. Times do not count, so equal changes made at
// different times hash alike.
//
// The source is a tree the sandbox may write (see internal/untrusted): it
// is read through descriptors only. The destination is a store temp
// directory, written through descriptors too, relative to its root.

// maxDepth bounds how deep a snapshot goes: each level holds two
// descriptors open, and a sandbox can nest directories without end.
const maxDepth = 2048

// errTooDeep matches the error of a tree nested deeper than maxDepth.
var errTooDeep = fmt.Errorf("directories nested deeper than %d levels", maxDepth)

// maxPath is PATH_MAX: a path in a layer, with its terminating NUL, fits
// in it, or the layer cannot be mounted, linked in or exported by path.
const maxPath = 4096

// pathTooLong is the error of an entry whose path is maxPath bytes or
// more; it matches syscall.ENAMETOOLONG.
type pathTooLong struct{ n int }

func (e *pathTooLong) Error() string {
	return fmt.Sprintf("a path of %d bytes: a snapshot holds paths shorter than %d bytes (PATH_MAX): %v", e.n, maxPath, unix.ENAMETOOLONG)
}

func (e *pathTooLong) Unwrap() error { return unix.ENAMETOOLONG }

// checkPathLen returns an *fs.PathError naming the start of p when p is
// too long for a layer (see maxPath).
func checkPathLen(p string) error {
	if len(p) < maxPath {
		return nil
	}
	return &fs.PathError{Op: "snapshot", Path: shortPath(p), Err: &pathTooLong{len(p)}}
}

// inode identifies a file, to keep hard links linked.
type inode struct{ dev, ino uint64 }

// linked is the first copy of a multiply linked file.
type linked struct {
	rel string // its path below the destination's root ("" when only hashing)
	p   string // its path in the layer
}

// copier copies an upper directory into a layer directory.
type copier struct {
	exclude *matcher
	log     *slog.Logger
	links   map[inode]linked // first copy of each multiply linked file
	h       hash.Hash
	n       int // entries copied
	dstRoot int // the destination's root directory, or -1 to only hash

	maxBytes     int64 // file bytes the tree may hold (maxFileBytes)
	bytes        int64 // file bytes copied
	maxLinkBytes int64 // bytes links may keep (maxLinkBytes)
	linkBytes    int64 // bytes links keeps: its paths, plus linkCost each
}

// newCopier returns a copier that leaves out what exclude matches, logs
// what it loses to log, and holds to the limits of a capture.
func newCopier(exclude *matcher, log *slog.Logger) *copier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &copier{
		exclude:      exclude,
		log:          log,
		links:        map[inode]linked{},
		maxBytes:     maxFileBytes,
		maxLinkBytes: maxLinkBytes,
	}
}

// keptXattr reports whether a layer keeps an extended attribute: overlayfs's
// bookkeeping (origin, impure, redirect, ...) belongs to the mount that
// wrote it, except opacity, which is what a layer means.
func keptXattr(name string) bool {
	if strings.HasPrefix(name, "user.overlay.") || strings.HasPrefix(name, "trusted.overlay.") {
		return name == "user.overlay.opaque"
	}
	return strings.HasPrefix(name, "user.") || strings.HasPrefix(name, "security.") && name != "security.selinux"
}

// copyTree copies the tree src into dst, an empty directory, and returns
// the content hash of what it copied and how many entries.
func (c *copier) copyTree(ctx context.Context, src *untrusted.Dir, dst *os.File) (v1.Hash, int, error) {
	c.h = sha256.New()
	c.dstRoot = int(dst.Fd())
	return c.tree(ctx, src, dst)
}

// HashTree returns the content hash of a layer directory (one the host
// made; it is read as carefully as a sandbox's) and its number of entries
// (the root itself not counted).
func HashTree(ctx context.Context, dir string) (v1.Hash, int, error) {
	src, err := untrusted.Open(dir)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer src.Close()
	c := newCopier(&matcher{}, nil)
	c.h, c.dstRoot = sha256.New(), -1
	return c.tree(ctx, src, nil)
}

// tree copies the entries of src into dst (nil: only hashes them), then
// the root's own metadata, and returns the hash and the number of entries.
func (c *copier) tree(ctx context.Context, src *untrusted.Dir, dst *os.File) (v1.Hash, int, error) {
	if err := c.copyDir(ctx, src, dst, 0, c.exclude.root()); err != nil {
		return v1.Hash{}, 0, err
	}
	st, err := src.Stat()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	xattrs, err := src.Xattrs(keptXattr)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	if dst != nil {
		if err := c.finishFd(int(dst.Fd()), st, xattrs); err != nil {
			return v1.Hash{}, 0, err
		}
	}
	c.record("/", st, "", nil, xattrs)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(c.h.Sum(nil))}, c.n, nil
}

// record adds one entry to the hash.
func (c *copier) record(p string, st *unix.Stat_t, target string, digest []byte, xattrs [][2]string) {
	var b []byte
	b = append(b, p...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, st.Mode)
	b = binary.BigEndian.AppendUint32(b, st.Uid)
	b = binary.BigEndian.AppendUint32(b, st.Gid)
	b = binary.BigEndian.AppendUint64(b, st.Rdev)
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		b = binary.BigEndian.AppendUint64(b, uint64(st.Size))
	}
	b = append(b, target...)
	b = append(b, 0)
	b = append(b, digest...)
	for _, x := range xattrs {
		b = append(b, x[0]...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(x[1])))
		b = append(b, x[1]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(b)))
	c.h.Write(b)
}

// copyDir copies the entries of src into dst (nil: only hash); depth is
// src's depth below the tree's root, and st where its path stands in the
// exclude patterns.
func (c *copier) copyDir(ctx context.Context, src *untrusted.Dir, dst *os.File, depth int, st matchState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if depth >= maxDepth {
		return &fs.PathError{Op: "snapshot", Path: src.Path(), Err: errTooDeep}
	}
	names, err := src.Names()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		full := path.Join(src.Path(), name)
		sub, excluded := c.exclude.enter(st, name)
		if excluded {
			continue
		}
		if err := checkPathLen(full); err != nil {
			return err
		}
		if err := c.copyEntry(ctx, src, dst, name, depth, sub); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies the entry name of src into dst; ms is where its path
// stands in the exclude patterns.
func (c *copier) copyEntry(ctx context.Context, src *untrusted.Dir, dst *os.File, name string, depth int, ms matchState) error {
	n, err := src.Lookup(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed while we copied (a sandbox the host cannot freeze)
	}
	if err != nil {
		return err
	}
	defer n.Close()
	st := n.Stat()
	p := n.Path()
	xattrs, err := n.Xattrs(keptXattr)
	if err != nil {
		return err
	}
	dfd := -1
	if dst != nil {
		dfd = int(dst.Fd())
	}
	switch n.Type() {
	case unix.S_IFDIR:
		c.n++
		c.record(p, st, "", nil, xattrs)
		sub, err := n.OpenDir()
		if err != nil {
			return err
		}
		defer sub.Close()
		var subDst *os.File
		if dst != nil {
			if subDst, err = c.mkdir(dfd, name); err != nil {
				return err
			}
			defer subDst.Close()
		}
		if err := c.copyDir(ctx, sub, subDst, depth+1, ms); err != nil {
			return err
		}
		if dst == nil {
			return nil
		}
		return c.finishFd(int(subDst.Fd()), st, xattrs)
	case unix.S_IFREG:
		c.n++
		return c.copyFile(ctx, n, dfd, name, xattrs)
	case unix.S_IFLNK:
		c.n++
		target, err := n.Readlink()
		if err != nil {
			return err
		}
		c.record(p, st, target, nil, xattrs)
		if dst == nil {
			return nil
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return &fs.PathError{Op: "symlink", Path: p, Err: err}
		}
		return c.finishAt(dfd, name, st, xattrs)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if n.Type() != unix.S_IFIFO && st.Rdev != 0 {
			c.log.Warn("snapshot: device node left out", "path", p)
			return nil
		}
		c.n++
		c.record(p, st, "", nil, xattrs) // a whiteout (0/0) or a fifo
		if dst == nil {
			return nil
		}
		if err := unix.Mknodat(dfd, name, st.Mode&(unix.S_IFMT|0o7777), int(st.Rdev)); err != nil {
			return &fs.PathError{Op: "mknod", Path: p, Err: err}
		}
		return c.finishAt(dfd, name, st, xattrs)
	default: // sockets do not outlive their sandbox
		return nil
	}
}

// mkdir makes the directory name in dfd, private until finished, and
// opens it.
func (c *copier) mkdir(dfd int, name string) (*os.File, error) {
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return nil, &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// copyFile copies the regular file n as name in dfd (-1: only hash), as a
// hard link to an earlier copy when it is one of several links. A file
// that takes the tree past its limits is an error matching
// image.ErrTooLarge; ctx ending stops the copy within a chunk.
func (c *copier) copyFile(ctx context.Context, n *untrusted.Node, dfd int, name string, xattrs [][2]string) error {
	st, p := n.Stat(), n.Path()
	rel := ""
	if dfd >= 0 {
		rel = strings.TrimPrefix(p, "/")
	}
	if st.Nlink > 1 {
		key := inode{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok {
			c.record(p, st, "=>"+first.p, nil, nil)
			if dfd < 0 {
				return nil
			}
			if err := unix.Linkat(c.dstRoot, first.rel, dfd, name, 0); err != nil {
				return &fs.PathError{Op: "link", Path: p, Err: err}
			}
			return nil
		}
		// rel is p's tail: the entry keeps p's bytes once.
		cost := int64(len(p)) + linkCost
		if c.linkBytes+cost > c.maxLinkBytes {
			return tooManyLinks(p, c.maxLinkBytes)
		}
		c.linkBytes += cost
		defer func() { c.links[key] = linked{rel: rel, p: p} }()
	}
	in, err := n.Open()
	if err != nil {
		return err
	}
	defer in.Close()
	sum := sha256.New()
	var out *os.File
	if dfd >= 0 {
		fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return &fs.PathError{Op: "create", Path: p, Err: err}
		}
		out = os.NewFile(uintptr(fd), name)
		defer out.Close()
	}
	// The size recorded is what was read: a file the sandbox writes while
	// it cannot be frozen hashes as copied. Holes and zeros stay holes.
	size, err := fsutil.CopySparseContext(ctx, in, out, sum, c.maxBytes-c.bytes)
	if errors.Is(err, fsutil.ErrFileTooLarge) {
		return tooMuchData(p, c.maxBytes)
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", shortPath(p), err)
	}
	c.bytes += size
	copied := *st
	copied.Size = size
	c.record(p, &copied, "", sum.Sum(nil), xattrs)
	if out == nil {
		return nil
	}
	return c.finishFd(int(out.Fd()), st, xattrs)
}

// finishFd gives the open file or directory fd the owner, mode, extended
// attributes and times of st.
func (c *copier) finishFd(fd int, st *unix.Stat_t, xattrs [][2]string) error {
	if os.Geteuid() == 0 {
		if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
			return os.NewSyscallError("fchown", err)
		}
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	for _, x := range xattrs {
		if err := unix.Fsetxattr(fd, x[0], []byte(x[1]), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			c.log.Warn("snapshot: extended attribute lost", "name", x[0], "err", err)
		}
	}
	if err := unix.UtimesNanoAt(fd, "", []unix.Timespec{st.Atim, st.Mtim}, unix.AT_EMPTY_PATH); err != nil {
		return os.NewSyscallError("utimensat", err)
	}
	return nil
}

// finishAt does what finishFd does for the entry name of dfd that cannot
// be opened (a symlink, a device node, a fifo), which this copy made.
func (c *copier) finishAt(dfd int, name string, st *unix.Stat_t, xattrs [][2]string) error {
	if os.Geteuid() == 0 {
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "lchown", Path: name, Err: err}
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(dfd, name, st.Mode&0o7777, 0); err != nil {
			return &fs.PathError{Op: "chmod", Path: name, Err: err}
		}
	}
	for _, x := range xattrs {
		if err := unix.Lsetxattr(fsutil.FDPath(dfd, name), x[0], []byte(x[1]), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			c.log.Warn("snapshot: extended attribute lost", "path", name, "name", x[0], "err", err)
		}
	}
	if err := unix.UtimesNanoAt(dfd, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: name, Err: err}
	}
	return nil
}
