package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ccsandbox/sandbox/internal/idmap"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// The content hash of a layer directory: for every entry, in path order,
// its path, type, permission bits, owner, size, content digest, link
// target, device numbers and the extended attributes a layer keeps. Times
// do not count, so equal changes made at different times hash alike.

// inode identifies a file, to keep hard links linked.
type inode struct{ dev, ino uint64 }

// linked is the first copy of a multiply linked file.
type linked struct {
	dst string // where it was copied ("" when only hashing)
	p   string // its path in the layer
}

// copier copies an upper directory into a layer directory.
type copier struct {
	ids     idmap.Map
	exclude *matcher
	log     *slog.Logger
	links   map[inode]linked // first copy of each multiply linked file
	h       hash.Hash
	n       int // entries copied
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

// copyTree copies src into a new directory dst and returns the content
// hash of what it copied and how many entries.
func (c *copier) copyTree(ctx context.Context, src, dst string) (v1.Hash, int, error) {
	c.h = sha256.New()
	if err := c.copyDir(ctx, src, dst, "/"); err != nil {
		return v1.Hash{}, 0, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(c.h.Sum(nil))}, c.n, nil
}

// HashTree returns the content hash of a layer directory and its number of
// entries (the root itself not counted).
func HashTree(ctx context.Context, dir string) (v1.Hash, int, error) {
	c := &copier{exclude: &matcher{}, links: map[inode]linked{}, h: sha256.New()}
	if err := c.copyDir(ctx, dir, "", "/"); err != nil {
		return v1.Hash{}, 0, err
	}
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

// copyDir copies the entries of the directory src into dst (created here;
// "" only hashes), p being src's path inside the layer.
func (c *copier) copyDir(ctx context.Context, src, dst, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	names, err := readDirNames(src, &st)
	if err != nil {
		return err
	}
	if dst != "" {
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
	}
	for _, name := range names {
		sp, dp, ep := filepath.Join(src, name), "", path.Join(p, name)
		if dst != "" {
			dp = filepath.Join(dst, name)
		}
		if c.exclude.match(ep) {
			continue
		}
		if err := c.copyEntry(ctx, sp, dp, ep); err != nil {
			return err
		}
	}
	if dst != "" {
		return c.finish(src, dst, &st)
	}
	return nil
}

// readDirNames lists a directory sorted, opening it up for the owner for
// the read when its mode forbids (a sandbox may chmod 000 its own
// directories; without root the copy runs as their owner).
func readDirNames(dir string, st *unix.Stat_t) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
		if cerr := unix.Chmod(dir, st.Mode&0o7777|0o700); cerr == nil {
			defer unix.Chmod(dir, st.Mode&0o7777)
			f, err = os.Open(dir)
		}
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// copyEntry copies one entry.
func (c *copier) copyEntry(ctx context.Context, src, dst, p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // removed while we copied
		}
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	c.n++
	xattrs := listXattrs(src)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		c.record(p, &st, "", nil, xattrs)
		return c.copyDir(ctx, src, dst, p)
	case unix.S_IFREG:
		return c.copyFile(src, dst, p, &st, xattrs)
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		c.record(p, &st, target, nil, xattrs)
		if dst == "" {
			return nil
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return c.finish(src, dst, &st)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if st.Mode&unix.S_IFMT != unix.S_IFIFO && st.Rdev != 0 {
			c.log.Warn("snapshot: device node left out", "path", p)
			c.n--
			return nil
		}
		c.record(p, &st, "", nil, xattrs) // a whiteout (0/0) or a fifo
		if dst == "" {
			return nil
		}
		if err := unix.Mknod(dst, st.Mode&(unix.S_IFMT|0o7777), int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
		return c.finish(src, dst, &st)
	default: // sockets do not outlive their sandbox
		c.n--
		return nil
	}
}

// copyFile copies a regular file, as a hard link to an earlier copy when
// src is one of several links.
func (c *copier) copyFile(src, dst, p string, st *unix.Stat_t, xattrs [][2]string) error {
	if st.Nlink > 1 {
		key := inode{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok {
			c.record(p, st, "=>"+first.p, nil, nil)
			if dst == "" {
				return nil
			}
			return os.Link(first.dst, dst)
		}
		defer func() { c.links[key] = linked{dst: dst, p: p} }()
	}
	in, err := os.Open(src)
	if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
		if cerr := unix.Chmod(src, st.Mode&0o7777|0o400); cerr == nil {
			in, err = os.Open(src)
			unix.Chmod(src, st.Mode&0o7777)
		}
	}
	if err != nil {
		return err
	}
	defer in.Close()
	sum := sha256.New()
	var w io.Writer = sum
	var out *os.File
	if dst != "" {
		if out, err = os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
			return err
		}
		defer out.Close()
		w = io.MultiWriter(out, sum)
	}
	if _, err := io.Copy(w, in); err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	c.record(p, st, "", sum.Sum(nil), xattrs)
	if dst == "" {
		return nil
	}
	if err := out.Close(); err != nil {
		return err
	}
	return c.finish(src, dst, st)
}

// finish gives dst the owner, mode, extended attributes and times of src.
func (c *copier) finish(src, dst string, st *unix.Stat_t) error {
	if os.Geteuid() == 0 {
		if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return &os.PathError{Op: "lchown", Path: dst, Err: err}
		}
	}
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if !isLink {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	for _, x := range listXattrs(src) {
		if err := unix.Lsetxattr(dst, x[0], []byte(x[1]), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			c.log.Warn("snapshot: extended attribute lost", "path", dst, "name", x[0], "err", err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}

// listXattrs returns the extended attributes of p that a layer keeps,
// sorted by name.
func listXattrs(p string) [][2]string {
	buf := make([]byte, 1024)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Llistxattr(p, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(p, buf)
		}
	}
	if err != nil || n == 0 {
		return nil
	}
	var out [][2]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !keptXattr(name) {
			continue
		}
		v := make([]byte, 256)
		k, err := unix.Lgetxattr(p, name, v)
		if errors.Is(err, unix.ERANGE) {
			if k, err = unix.Lgetxattr(p, name, nil); err == nil {
				v = make([]byte, k)
				k, err = unix.Lgetxattr(p, name, v)
			}
		}
		if err == nil {
			out = append(out, [2]string{name, string(v[:k])})
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}
