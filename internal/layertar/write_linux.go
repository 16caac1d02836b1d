//go:build linux

// Package layertar writes a layer directory in overlay format as an OCI
// layer tar. It stands apart from the layer store so that the agent, which
// writes a VM's layers from inside, needs none of the store's dependencies.
package layertar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"golang.org/x/sys/unix"
)

// Write writes the layer directory dir, in overlay format, to w as
// an OCI layer tar: a 0/0 character device becomes a .wh.NAME whiteout, an
// opaque directory (user.overlay.opaque or trusted.overlay.opaque = y) is
// followed by its .wh..wh..opq, owners are turned back into container ids
// with ids (as root: ids outside the map become 65534; unprivileged: the
// user.cc.owner xattr, else 0:0), and the overlay's and the store's xattrs
// are left out. Entries come in name order with times truncated to
// seconds, so the same tree always gives the same bytes. The root
// directory itself has no entry. Other device nodes and sockets are
// skipped and logged. dir is walked through descriptors that never follow
// a symlink, so a tree that changes meanwhile cannot lead the walk outside
// it. Errors are *fs.PathError values naming the entry, or w's errors; a
// layer whose hard links pass MaxLinkBytes is an error matching
// ErrTooManyLinks. ctx is checked between entries and at every chunk of
// a file's data, so a huge (sparse) file stops soon after ctx ends.
func Write(ctx context.Context, w io.Writer, dir string, ids idmap.Map, log *slog.Logger) error {
	return write(ctx, w, dir, ids, log, MaxLinkBytes)
}

// write is Write keeping at most maxLinkBytes for hard links.
func write(ctx context.Context, w io.Writer, dir string, ids idmap.Map, log *slog.Logger, maxLinkBytes int64) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	t := &tarWriter{
		ctx:    ctx,
		tw:     tar.NewWriter(w),
		ids:    ids,
		single: ids.Single(),
		log:    log,
		links:  make(map[[2]uint64]string),
		buf:    make([]byte, 1<<20),

		maxLinkBytes: maxLinkBytes,
	}
	if err := t.walk(fd, ""); err != nil {
		return err
	}
	if t.overflow > 0 {
		log.Warn("layer export: host ids outside the sandbox range written as 65534", "entries", t.overflow)
	}
	return t.tw.Close()
}

type tarWriter struct {
	ctx      context.Context
	tw       *tar.Writer
	ids      idmap.Map
	single   bool
	log      *slog.Logger
	links    map[[2]uint64]string // (dev, inode) -> first name, for hard links
	buf      []byte
	overflow int

	maxLinkBytes int64 // bytes links may keep
	linkBytes    int64 // bytes links keeps: its names, plus LinkCost each
}

func (t *tarWriter) walk(dirfd int, rel string) error {
	names, err := readDirNames(dirfd)
	if err != nil {
		return &os.PathError{Op: "export", Path: rel + "/", Err: err}
	}
	// A directory the sandbox renames in while it is read can list a name
	// twice (getdents guarantees nothing across a rename); a layer lists
	// each name once, so the second is left out (the unpacker refuses a
	// duplicate entry).
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if err := t.entry(dirfd, rel, n); err != nil {
			return err
		}
	}
	return nil
}

func readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

func (t *tarWriter) entry(dirfd int, parent, base string) error {
	name := JoinName(parent, base)
	fail := func(op string, err error) error {
		return &os.PathError{Op: "export", Path: name, Err: fmt.Errorf("%s: %w", op, err)}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil // removed since the directory was listed: not in the layer
		}
		return fail("stat", err)
	}
	xattrs, err := readXattrs(fsutil.FDPath(dirfd, base))
	if err != nil {
		if changedSinceStat(err) {
			return nil
		}
		return fail("xattrs", err)
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		ModTime: time.Unix(st.Mtim.Sec, 0),
	}
	hdr.Uid, hdr.Gid = t.owner(&st, xattrs)
	for k, v := range xattrs {
		if !InternalXattr(k) {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = make(map[string]string)
			}
			hdr.PAXRecords[PaxXattrPrefix+k] = v
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if st.Rdev != 0 {
			t.log.Warn("layer export: device node skipped", "entry", name)
			return nil
		}
		wh := &tar.Header{Name: JoinName(parent, WhPrefix+base), Typeflag: tar.TypeReg, Mode: 0o600, ModTime: hdr.ModTime}
		if err := t.tw.WriteHeader(wh); err != nil {
			return fail("write", err)
		}
		return nil
	case unix.S_IFDIR:
		// Opened before its header is written: one the sandbox has
		// removed or swapped for a link since is left out whole.
		fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if changedSinceStat(err) {
				return nil
			}
			return fail("open", err)
		}
		defer unix.Close(fd)
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := t.tw.WriteHeader(hdr); err != nil {
			return fail("write", err)
		}
		if xattrs[XattrOpaque] == "y" || xattrs[XattrTrustedOpaque] == "y" {
			opq := &tar.Header{Name: name + "/" + WhOpaque, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: hdr.ModTime}
			if err := t.tw.WriteHeader(opq); err != nil {
				return fail("write", err)
			}
		}
		return t.walk(fd, name)
	case unix.S_IFLNK:
		target, err := readlinkat(dirfd, base)
		if err != nil {
			if changedSinceStat(err) || errors.Is(err, unix.EINVAL) { // no longer a link
				return nil
			}
			return fail("readlink", err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := t.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			cost := int64(len(name)) + LinkCost
			if t.linkBytes+cost > t.maxLinkBytes {
				return &os.PathError{Op: "export", Path: shortName(name), Err: fmt.Errorf(
					"%w: they need more than %d bytes to remember (%d per file and its name), the most one export keeps (MaxLinkBytes)",
					ErrTooManyLinks, t.maxLinkBytes, LinkCost)}
			}
			t.linkBytes += cost
			t.links[key] = name
		}
		return t.file(dirfd, base, hdr, st.Size, fail)
	default:
		t.log.Warn("layer export: entry skipped", "entry", name, "mode", strconv.FormatUint(uint64(st.Mode), 8))
		return nil
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fail("write", err)
	}
	return nil
}

func (t *tarWriter) file(dirfd int, base string, hdr *tar.Header, size int64, fail func(string, error) error) error {
	// O_NONBLOCK: the entry was a regular file when it was stated, but a
	// sandbox writing the tree meanwhile can rename a FIFO in its place,
	// whose open would wait for a writer for good (and the snapshot with
	// it). Regular files ignore the flag. What is no longer a regular
	// file, or gone, is left out, as if the sandbox had changed it
	// before the walk came.
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if changedSinceStat(err) {
			return nil
		}
		return fail("open", err)
	}
	f := os.NewFile(uintptr(fd), hdr.Name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail("stat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, size
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fail("write", err)
	}
	n, err := io.CopyBuffer(t.tw, &fsutil.ContextReader{Ctx: t.ctx, R: io.LimitReader(f, size)}, t.buf)
	if err == nil && n != size {
		err = fmt.Errorf("file shrank from %d to %d bytes while being read", size, n)
	}
	if err != nil {
		return fail("copy", err)
	}
	return nil
}

// changedSinceStat reports whether err, from opening or reading an entry
// that was just stated, says the sandbox changed it since: removed it
// (ENOENT), or put a link (ELOOP with O_NOFOLLOW) or a file (ENOTDIR) in
// its place. Such an entry is left out of the layer: a snapshot of a tree
// the sandbox writes meanwhile (where it cannot be frozen) takes entries
// as the walk finds them.
func changedSinceStat(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

// shortName returns name, cut to its first 64 bytes when longer, for
// errors.
func shortName(name string) string {
	if len(name) <= 64 {
		return name
	}
	return name[:64] + "..."
}

// owner returns an entry's container owner.
func (t *tarWriter) owner(st *unix.Stat_t, xattrs map[string]string) (int, int) {
	if t.single {
		u, g, ok := strings.Cut(xattrs[XattrOwner], ":")
		uid, err1 := strconv.Atoi(u)
		gid, err2 := strconv.Atoi(g)
		if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
			return 0, 0
		}
		return uid, gid
	}
	uid, ok1 := t.ids.ContainerUID(st.Uid)
	gid, ok2 := t.ids.ContainerGID(st.Gid)
	if !ok1 || !ok2 {
		t.overflow++
	}
	if !ok1 {
		uid = OverflowID
	}
	if !ok2 {
		gid = OverflowID
	}
	return int(uid), int(gid)
}

// readXattrs returns every xattr of the entry at path (not followed).
func readXattrs(path string) (map[string]string, error) {
	var buf [1024]byte
	n, err := unix.Llistxattr(path, buf[:])
	if err == unix.ERANGE {
		var size int
		if size, err = unix.Llistxattr(path, nil); err == nil {
			big := make([]byte, size)
			n, err = unix.Llistxattr(path, big)
			return readXattrValues(path, big[:max(n, 0)], err)
		}
	}
	return readXattrValues(path, buf[:max(n, 0)], err)
}

func readXattrValues(path string, list []byte, err error) (map[string]string, error) {
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	if len(list) == 0 {
		return nil, nil
	}
	out := make(map[string]string)
	for _, k := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		if k == "" {
			continue
		}
		v, err := getXattr(path, k)
		if err != nil {
			if err == unix.ENODATA || err == unix.EPERM || err == unix.EACCES || err == unix.ENOTSUP {
				continue // gone meanwhile, or not ours to read
			}
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// getXattr reads the value of the attribute k of path (not following a
// final link), asking its size first, and again while it grows between
// the two calls (ERANGE): a sandbox may change it meanwhile.
func getXattr(path, k string) (string, error) {
	for {
		size, err := unix.Lgetxattr(path, k, nil)
		if err != nil {
			return "", err
		}
		v := make([]byte, size)
		n, err := unix.Lgetxattr(path, k, v)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(v[:n]), nil
	}
}

func readlinkat(dirfd int, base string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, base, b)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}
