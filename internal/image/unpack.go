//go:build linux

package image

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"golang.org/x/sys/unix"
)

// Unpack reads a layer's uncompressed tar stream from r to its end and
// writes it into dir, an existing empty directory, in overlay format (see
// the package doc). It returns what it did, or the first error: a
// *fs.PathError naming the archive entry for a hostile or malformed entry
// (matching ErrUnsafeEntry or ErrInvalidEntry), ErrTooLarge beyond
// opts.Limits, or the context's error. After an error dir holds a partial
// layer for the caller to remove; nothing outside dir is ever written.
// Unpack does not sync what it wrote.
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) (UnpackStats, error) {
	root, err := os.Open(dir)
	if err != nil {
		return UnpackStats{}, err
	}
	defer root.Close()
	u := &unpacker{
		ctx:        ctx,
		ids:        opts.IDs,
		single:     opts.IDs.Single(),
		limits:     opts.Limits.withDefaults(),
		log:        opts.Logger,
		writeback:  opts.Writeback,
		requireEnd: opts.RequireEnd,
		rootFD:     int(root.Fd()),
		nodes:      make(map[string]kind),
		dirIndex:   make(map[string]int),
		parentFD:   -1,
		buf:        make([]byte, 1<<20),
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	defer u.closeParent()
	// The root directory: mode 0755, owned by container root, unless the
	// archive has an entry for it.
	u.addDir("", 0o755, 0, 0, time.Time{}, time.Time{})
	err = u.run(r)
	u.report()
	return u.stats, err
}

// kind is what an entry made.
type kind uint8

const (
	kindNone        kind = iota
	kindDir              // a directory with an archive entry
	kindImplicitDir      // a parent directory the archive did not list
	kindFile
	kindSymlink
	kindFifo
	kindWhiteout
)

func (k kind) String() string {
	switch k {
	case kindDir, kindImplicitDir:
		return "directory"
	case kindFile:
		return "regular file"
	case kindSymlink:
		return "symlink"
	case kindFifo:
		return "fifo"
	case kindWhiteout:
		return "whiteout"
	}
	return "nothing"
}

func (k kind) isDir() bool { return k == kindDir || k == kindImplicitDir }

// dirMeta is what is applied to a directory once all its entries exist.
type dirMeta struct {
	name         string
	mode         uint32
	uid, gid     int // container ids
	atime, mtime time.Time
}

// unpacker is the state of one Unpack call.
type unpacker struct {
	ctx        context.Context
	ids        idmap.Map
	single     bool
	limits     Limits
	log        *slog.Logger
	writeback  bool
	requireEnd bool
	drained    int64 // what RequireEnd's drain read of entries' data, holes included
	rootFD     int

	nodes map[string]kind // what each clean name is now
	// nameBytes counts the bytes of the names nodes holds (see
	// Limits.MaxNameBytes).
	nameBytes int64
	opaque    map[string]bool // directories marked opaque
	dirs      []dirMeta       // in creation order
	dirIndex  map[string]int  // name -> index in dirs

	parent   string // clean name of the directory parentFD holds
	parentFD int    // O_PATH descriptor of parent, -1 when none

	buf   []byte
	stats UnpackStats

	// Reported once at the end rather than per entry.
	overflowIDs int
	firstOverID string
	lostFirst   string
}

// run reads every entry, then the rest of the stream, then finishes the
// directories.
func (u *unpacker) run(r io.Reader) error {
	lr := &limitReader{r: r, left: u.limits.MaxBytes}
	br := bufio.NewReaderSize(lr, 256<<10)
	cr := &countingReader{r: br}
	tr := tar.NewReader(cr)
	last := "" // the last entry's name, for errors between entries
	for {
		if err := u.ctx.Err(); err != nil {
			return err
		}
		if u.requireEnd && last != "" {
			if err := u.drainEntry(tr, lr, last); err != nil {
				return err
			}
		}
		before := cr.n
		hdr, err := tr.Next()
		if err == io.EOF {
			if u.requireEnd {
				if err := checkEnd(cr, before, last); err != nil {
					return err
				}
			}
			break
		}
		if err != nil {
			if lr.over {
				return u.tooLarge(last)
			}
			if last == "" {
				return fmt.Errorf("reading layer: first entry: %w", err)
			}
			return fmt.Errorf("reading layer: entry after %q: %w", last, err)
		}
		last = hdr.Name
		u.stats.Entries++
		if u.stats.Entries > u.limits.MaxEntries {
			return entryErr(hdr.Name, ErrTooLarge, "more than %d entries", u.limits.MaxEntries)
		}
		if err := u.entry(hdr, tr); err != nil {
			if lr.over {
				return u.tooLarge(hdr.Name)
			}
			return err
		}
		if u.nameBytes > u.limits.MaxNameBytes {
			return entryErr(hdr.Name, ErrTooLarge, "its names (and the directories they imply) take more than %d bytes", u.limits.MaxNameBytes)
		}
	}
	// The bytes after the end-of-archive marker belong to the digest too.
	if _, err := io.CopyBuffer(io.Discard, br, u.buf); err != nil {
		if lr.over {
			return u.tooLarge(last)
		}
		return fmt.Errorf("reading layer after its last entry: %w", err)
	}
	return u.finishDirs()
}

// node records what name is now, counting the bytes of a name it did not
// hold yet.
func (u *unpacker) node(name string, k kind) {
	if _, ok := u.nodes[name]; !ok {
		u.nameBytes += int64(len(name))
	}
	u.nodes[name] = k
}

func (u *unpacker) tooLarge(entry string) error {
	return entryErr(entry, ErrTooLarge, "layer is larger than %d bytes", u.limits.MaxBytes)
}

// entry writes one archive entry.
func (u *unpacker) entry(hdr *tar.Header, data io.Reader) error {
	if err := checkNameLen(hdr.Name); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeLink {
		if err := checkNameLen(hdr.Linkname); err != nil {
			return err
		}
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return entryErr(hdr.Name, ErrInvalidEntry, "the root is not a directory")
		}
		return u.dirEntry(hdr, "", "", "")
	}
	parent, base := splitName(name)
	if strings.HasPrefix(base, layertar.WhPrefix) {
		return u.whiteout(hdr, name, parent, base)
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		u.skip(hdr, "device node")
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	}
	k, err := u.kindOf(hdr)
	if err != nil {
		return err
	}
	if err := u.openParent(hdr.Name, parent, hdr.ModTime); err != nil {
		return err
	}
	wasWhiteout := false
	if prev := u.nodes[name]; prev != kindNone {
		switch {
		case prev == kindWhiteout:
			// The whiteout hides the layers below; this layer's own entry
			// replaces it (as an opaque directory if it is one).
			if err := unix.Unlinkat(u.parentFD, base, 0); err != nil {
				return u.sysErr(hdr.Name, "unlink whiteout", err)
			}
			delete(u.nodes, name)
			wasWhiteout = true
		case prev.isDir() && k == kindDir:
			// A directory listed again: its later metadata wins.
		case prev.isDir() != (k == kindDir) || prev != k:
			return entryErr(hdr.Name, ErrUnsafeEntry, "changes type from %s to %s", prev, k)
		default:
			return entryErr(hdr.Name, ErrUnsafeEntry, "duplicate entry")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.dirEntry(hdr, name, parent, base); err != nil {
			return err
		}
		if wasWhiteout {
			return u.markOpaque(hdr.Name, name)
		}
		return nil
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse: // the reader turns TypeRegA into TypeReg
		return u.fileEntry(hdr, name, base, data)
	case tar.TypeSymlink:
		return u.symlinkEntry(hdr, name, base)
	case tar.TypeLink:
		return u.linkEntry(hdr, name, base)
	case tar.TypeFifo:
		return u.fifoEntry(hdr, name, base)
	}
	return entryErr(hdr.Name, ErrInvalidEntry, "unsupported type %q", hdr.Typeflag)
}

// kindOf tells what an entry will make; for a hard link, the kind of its
// target.
func (u *unpacker) kindOf(hdr *tar.Header) (kind, error) {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return kindDir, nil
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse: // the reader turns TypeRegA into TypeReg
		return kindFile, nil
	case tar.TypeSymlink:
		return kindSymlink, nil
	case tar.TypeFifo:
		return kindFifo, nil
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || target == "" {
			return kindNone, entryErr(hdr.Name, ErrUnsafeEntry, "hard link to %q, outside the layer", hdr.Linkname)
		}
		k := u.nodes[target]
		if k != kindFile && k != kindSymlink && k != kindFifo {
			return kindNone, entryErr(hdr.Name, ErrUnsafeEntry, "hard link to %q, which is not an earlier file of this layer", hdr.Linkname)
		}
		return k, nil
	}
	return kindNone, entryErr(hdr.Name, ErrInvalidEntry, "unsupported type %q", hdr.Typeflag)
}

// openParent makes sure the directory parent exists, creating the
// directories the archive did not list, checks that no element of it is
// anything but a directory of this layer, and leaves it open as parentFD.
func (u *unpacker) openParent(entry, parent string, mtime time.Time) error {
	if parent == u.parent && u.parentFD >= 0 {
		return nil
	}
	for i := 0; i <= len(parent); {
		j := strings.IndexByte(parent[i:], '/')
		if j < 0 {
			j = len(parent)
		} else {
			j += i
		}
		prefix := parent[:j]
		i = j + 1
		if prefix == "" {
			continue
		}
		switch k := u.nodes[prefix]; k {
		case kindDir, kindImplicitDir:
		case kindNone:
			if err := u.implicitDir(entry, prefix, mtime); err != nil {
				return err
			}
		case kindSymlink:
			return entryErr(entry, ErrUnsafeEntry, "below the symlink %q", prefix)
		default:
			return entryErr(entry, ErrUnsafeEntry, "below %q, a %s", prefix, k)
		}
	}
	u.closeParent()
	fd, err := openBeneath(u.rootFD, parent)
	if err != nil {
		return u.sysErr(entry, "open parent", err)
	}
	u.parent, u.parentFD = parent, fd
	return nil
}

func (u *unpacker) closeParent() {
	if u.parentFD >= 0 {
		unix.Close(u.parentFD)
		u.parentFD = -1
	}
}

// implicitDir creates a directory the archive did not list: mode 0755,
// owned by container root, with the modification time of the entry that
// implies it (so that the same archive always gives the same tree).
func (u *unpacker) implicitDir(entry, name string, mtime time.Time) error {
	parent, base := splitName(name)
	fd, err := openBeneath(u.rootFD, parent)
	if err != nil {
		return u.sysErr(entry, "open parent", err)
	}
	defer unix.Close(fd)
	if err := unix.Mkdirat(fd, base, 0o700); err != nil {
		return u.sysErr(entry, "mkdir "+name, err)
	}
	u.node(name, kindImplicitDir)
	u.addDir(name, 0o755, 0, 0, time.Time{}, mtime)
	return nil
}

// addDir records (or replaces) the metadata a directory gets at the end.
func (u *unpacker) addDir(name string, mode uint32, uid, gid int, atime, mtime time.Time) {
	m := dirMeta{name: name, mode: mode, uid: uid, gid: gid, atime: atime, mtime: mtime}
	if i, ok := u.dirIndex[name]; ok {
		u.dirs[i] = m
		return
	}
	u.dirIndex[name] = len(u.dirs)
	u.dirs = append(u.dirs, m)
}

func (u *unpacker) dirEntry(hdr *tar.Header, name, parent, base string) error {
	if name != "" && u.nodes[name] == kindNone {
		if err := unix.Mkdirat(u.parentFD, base, 0o700); err != nil {
			return u.sysErr(hdr.Name, "mkdir", err)
		}
	}
	if name != "" {
		u.node(name, kindDir)
	}
	u.addDir(name, uint32(hdr.Mode)&0o7777, hdr.Uid, hdr.Gid, hdr.AccessTime, hdr.ModTime)
	if len(hdr.PAXRecords) == 0 {
		return nil
	}
	fd, err := openBeneath(u.rootFD, name)
	if err != nil {
		return u.sysErr(hdr.Name, "open", err)
	}
	defer unix.Close(fd)
	return u.xattrs(hdr, -1, fsutil.FDPath(fd, "."))
}

func (u *unpacker) fileEntry(hdr *tar.Header, name, base string, data io.Reader) error {
	// The input bound alone does not hold a sparse file's holes, which
	// cost no input: bound what is written too.
	if hdr.Size < 0 || hdr.Size > u.limits.MaxBytes-u.stats.Bytes {
		return u.tooLarge(hdr.Name)
	}
	fd, err := unix.Openat(u.parentFD, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return u.sysErr(hdr.Name, "create", err)
	}
	u.node(name, kindFile)
	err = u.writeFile(hdr, fd, base, data)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = u.sysErr(hdr.Name, "close", cerr)
	}
	return err
}

func (u *unpacker) writeFile(hdr *tar.Header, fd int, base string, data io.Reader) error {
	var written int64
	for {
		n, rerr := io.ReadFull(data, u.buf)
		// A chunk of zeros is left a hole (the final truncate sizes the
		// file): a sandbox's sparse file, streamed as a tar of its zeros,
		// takes the store no more room than it took the sandbox.
		off := written
		for p := u.buf[:n]; len(p) > 0 && !fsutil.AllZero(p); {
			m, err := unix.Pwrite(fd, p, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return u.sysErr(hdr.Name, "write", err)
			}
			p, off = p[m:], off+int64(m)
		}
		written += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF && written == hdr.Size {
			break
		}
		if rerr != nil {
			if rerr == io.ErrUnexpectedEOF {
				return entryErr(hdr.Name, ErrInvalidEntry, "archive ends after %d of its %d bytes", written, hdr.Size)
			}
			return &os.PathError{Op: "unpack", Path: hdr.Name, Err: rerr}
		}
	}
	if err := unix.Ftruncate(fd, written); err != nil {
		return u.sysErr(hdr.Name, "truncate", err)
	}
	u.stats.Bytes += written
	if u.writeback && written > 0 {
		// Only starts the writeback; errors surface at the final sync.
		unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if err := u.chown(hdr, func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return u.sysErr(hdr.Name, "chmod", err)
	}
	if err := u.owner(hdr, fd, ""); err != nil {
		return err
	}
	if err := u.xattrs(hdr, fd, ""); err != nil {
		return err
	}
	return u.times(hdr, u.parentFD, base, unix.AT_SYMLINK_NOFOLLOW)
}

func (u *unpacker) symlinkEntry(hdr *tar.Header, name, base string) error {
	if hdr.Linkname == "" {
		return entryErr(hdr.Name, ErrInvalidEntry, "symlink with an empty target")
	}
	if err := unix.Symlinkat(hdr.Linkname, u.parentFD, base); err != nil {
		return u.sysErr(hdr.Name, "symlink", err)
	}
	u.node(name, kindSymlink)
	if err := u.chown(hdr, func(uid, gid int) error {
		return unix.Fchownat(u.parentFD, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return err
	}
	p := fsutil.FDPath(u.parentFD, base)
	if err := u.owner(hdr, -1, p); err != nil {
		return err
	}
	if err := u.xattrs(hdr, -1, p); err != nil {
		return err
	}
	return u.times(hdr, u.parentFD, base, unix.AT_SYMLINK_NOFOLLOW)
}

func (u *unpacker) linkEntry(hdr *tar.Header, name, base string) error {
	target, _ := cleanName(hdr.Linkname) // checked by kindOf
	tparent, tbase := splitName(target)
	tfd := u.parentFD
	if tparent != u.parent {
		fd, err := openBeneath(u.rootFD, tparent)
		if err != nil {
			return u.sysErr(hdr.Name, "open link target's directory", err)
		}
		defer unix.Close(fd)
		tfd = fd
	}
	if err := unix.Linkat(tfd, tbase, u.parentFD, base, 0); err != nil {
		return u.sysErr(hdr.Name, "link", err)
	}
	u.node(name, u.nodes[target])
	return nil
}

func (u *unpacker) fifoEntry(hdr *tar.Header, name, base string) error {
	if err := unix.Mknodat(u.parentFD, base, unix.S_IFIFO|0o600, 0); err != nil {
		return u.sysErr(hdr.Name, "mkfifo", err)
	}
	u.node(name, kindFifo)
	if err := u.chown(hdr, func(uid, gid int) error {
		return unix.Fchownat(u.parentFD, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return err
	}
	if err := unix.Fchmodat(u.parentFD, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
		return u.sysErr(hdr.Name, "chmod", err)
	}
	p := fsutil.FDPath(u.parentFD, base)
	if err := u.owner(hdr, -1, p); err != nil {
		return err
	}
	if err := u.xattrs(hdr, -1, p); err != nil {
		return err
	}
	return u.times(hdr, u.parentFD, base, unix.AT_SYMLINK_NOFOLLOW)
}

// rootPathOf names rel below the root descriptor for path-only calls.
func (u *unpacker) rootPathOf(rel string) string { return fsutil.FDPath(u.rootFD, rel) }

func (u *unpacker) skip(hdr *tar.Header, what string) {
	u.stats.Skipped++
	u.log.Debug("layer entry skipped", "entry", hdr.Name, "what", what)
}

// report logs, once, what was lost or remapped.
func (u *unpacker) report() {
	if u.overflowIDs > 0 {
		u.log.Warn("layer ids outside the sandbox id range stored as nobody (65534)",
			"entries", u.overflowIDs, "first", u.firstOverID)
	}
	if u.stats.Lost > 0 {
		u.log.Warn("layer xattrs or owners the filesystem or this user cannot keep were dropped",
			"count", u.stats.Lost, "first", u.lostFirst)
	}
	if u.stats.Skipped > 0 {
		u.log.Debug("layer entries skipped", "count", u.stats.Skipped)
	}
}

// sysErr wraps a system call's error for an entry.
func (u *unpacker) sysErr(entry, op string, err error) error {
	return &os.PathError{Op: "unpack", Path: entry, Err: fmt.Errorf("%s: %w", op, err)}
}

// checkNameLen refuses an entry name of PATH_MAX (4096) bytes or more,
// which no path-based tool could use, with an error that names the
// length and the limit and matches both ErrInvalidEntry and ENAMETOOLONG.
func checkNameLen(name string) error {
	if len(name) < 4096 {
		return nil
	}
	return &os.PathError{Op: "unpack", Path: name[:64] + "...", Err: fmt.Errorf("%w: a path of %d bytes: paths are shorter than 4096 bytes (PATH_MAX): %w", ErrInvalidEntry, len(name), unix.ENAMETOOLONG)}
}
