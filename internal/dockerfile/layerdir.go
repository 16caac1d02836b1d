package dockerfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"github.com/ccsandbox/sandbox/internal/untrusted"
	"golang.org/x/sys/unix"
)

// layerWriter fills a new layer directory (overlay format) with the
// files a step adds on top of a base. Directories it creates for the
// parents of those files copy the base's directory of the same name
// (mode, owner, times), so the layer changes nothing but what the step
// writes. Ownership is stored as the store stores it: shifted by the id
// map as root, in layertar.XattrOwner in unprivileged mode.
type layerWriter struct {
	// layer is the layer directory, opened: every write goes through it,
	// so no symlink the layer holds (an image's, a context's, a step's)
	// leads a write out of it, whatever dirs says.
	layer *os.Root
	ids   idmap.Map
	base  *layerFS
	dirs  map[string]dirMeta // every directory made, applied by finish
	// copied maps a source file with more than one link to the layer's
	// first copy of it, so that its other names become links to that
	// copy, not copies: a file and its thousands of links would
	// otherwise take the host thousands of times the file's room.
	copied map[fileID]copiedFile
	// epoch, when not zero, is the latest time an entry gets
	// (Options.SourceDateEpoch).
	epoch time.Time
}

// fileID names an inode.
type fileID struct{ dev, ino uint64 }

// copiedFile is a layer's copy of a source file: where, and the copy
// held open, whose inode tells it from whatever replaced it since (held
// open, the inode's number cannot be given to a new file meanwhile).
type copiedFile struct {
	rel string
	f   *os.File
}

// maxLinkedSources bounds the first copies a writer holds open to link
// later names to; sources past it are copied.
const maxLinkedSources = 1024

// dirMeta is what a directory of the layer gets once it is complete.
type dirMeta struct {
	mode     fs.FileMode
	uid, gid int
	mtime    time.Time
}

// newLayerWriter makes the layer directory root (a host path the builder
// chose) and opens it; the writer must be closed.
func newLayerWriter(root string, ids idmap.Map, base *layerFS) (*layerWriter, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	layer, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	w := &layerWriter{layer: layer, ids: ids, base: base, dirs: map[string]dirMeta{}, copied: map[fileID]copiedFile{}}
	meta := dirMeta{mode: fs.ModeDir | 0o755}
	if e, err := base.lstat(""); err == nil {
		meta = dirMeta{mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime}
	}
	w.dirs[""] = meta
	return w, nil
}

// close closes the layer directory and the copies held open.
func (w *layerWriter) close() error {
	w.closeCopies()
	return w.layer.Close()
}

// closeCopies closes the first copies held open for linking.
func (w *layerWriter) closeCopies() {
	for id, c := range w.copied {
		c.f.Close()
		delete(w.copied, id)
	}
}

// name is rel as the layer's root resolves it.
func name(rel string) string {
	if rel == "" {
		return "."
	}
	return filepath.FromSlash(rel)
}

// parent opens the directory that holds rel (not the root) and returns
// it with rel's last component.
func (w *layerWriter) parent(rel string) (*os.File, string, error) {
	if rel == "" {
		return nil, "", &fs.PathError{Op: "open", Path: "/", Err: unix.EINVAL}
	}
	dir, err := w.layer.Open(name(parentRel(rel)))
	if err != nil {
		return nil, "", err
	}
	return dir, path.Base(rel), nil
}

// mkdirAll makes the directory rel and its parents in the layer. A
// directory the base has keeps the base's metadata; a new one gets
// meta.
func (w *layerWriter) mkdirAll(rel string, meta dirMeta) error {
	if rel == "" {
		return nil
	}
	if _, ok := w.dirs[rel]; ok {
		return nil
	}
	if err := w.mkdirAll(parentRel(rel), meta); err != nil {
		return err
	}
	if e, err := w.base.lstat(rel); err == nil {
		if !e.mode.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: "/" + rel, Err: unix.ENOTDIR}
		}
		meta = dirMeta{mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime}
	}
	return w.dir(rel, meta)
}

// dir makes (or re-describes) the directory rel, whose parent exists.
func (w *layerWriter) dir(rel string, meta dirMeta) error {
	if _, ok := w.dirs[rel]; !ok {
		if err := w.clear(rel, true); err != nil {
			return err
		}
		if err := w.layer.Mkdir(name(rel), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	w.dirs[rel] = meta
	return nil
}

// clear removes what the layer has at rel, unless it is a directory and
// keepDir is set. What it removes is no directory of the writer's any
// more, and neither is anything that was below it.
func (w *layerWriter) clear(rel string, keepDir bool) error {
	fi, err := w.layer.Lstat(name(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() && keepDir {
		return nil
	}
	w.forget(rel)
	dir, base, err := w.parent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	return untrusted.RemoveAllAt(dir, base)
}

// forget drops rel and every directory below it from the directories
// finish applies. A directory that was replaced (by a file, a symlink)
// must not stay on the list: mkdirAll would take it as made and write
// through whatever replaced it, and finish would chmod that.
func (w *layerWriter) forget(rel string) {
	for d := range w.dirs {
		if d == rel || strings.HasPrefix(d, rel+"/") {
			delete(w.dirs, d)
		}
	}
}

// create makes rel a new regular file (replacing what was there), open
// for writing.
func (w *layerWriter) create(rel string) (*os.File, error) {
	if err := w.clear(rel, false); err != nil {
		return nil, err
	}
	w.forget(rel)
	return w.layer.OpenFile(name(rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// file writes a regular file with the content of r.
func (w *layerWriter) file(rel string, r io.Reader, mode fs.FileMode, uid, gid int, mtime time.Time) error {
	f, err := w.create(rel)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing /%s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return w.finishEntry(rel, false, mode, uid, gid, mtime)
}

// copyFile writes a regular file with the content of the host file src.
// Holes stay holes (and runs of zeros become holes): a sparse file a
// stage made costs the host no more room than it cost the stage. A
// source with other names that this writer has copied already becomes a
// link to that copy, as BuildKit keeps hard links.
func (w *layerWriter) copyFile(rel, src string, mode fs.FileMode, uid, gid int, mtime time.Time) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: src, Err: err}
	}
	source := fileID{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 {
		if first, ok := w.copied[source]; ok && w.still(first) {
			if err := w.clear(rel, false); err != nil {
				return err
			}
			w.forget(rel)
			return w.layer.Link(name(first.rel), name(rel))
		}
	}
	f, err := w.create(rel)
	if err != nil {
		return err
	}
	if _, err := fsutil.CopySparse(in, f, nil); err != nil {
		f.Close()
		return fmt.Errorf("writing /%s: %w", rel, err)
	}
	kept := false
	if st.Nlink > 1 {
		if old, seen := w.copied[source]; seen { // replaced since: this copy is the first now
			old.f.Close()
			delete(w.copied, source)
		}
		if kept = len(w.copied) < maxLinkedSources; kept {
			w.copied[source] = copiedFile{rel: rel, f: f} // closed by close or finish
		}
	}
	if !kept {
		if err := f.Close(); err != nil {
			return err
		}
	}
	return w.finishEntry(rel, false, mode, uid, gid, mtime)
}

// still reports whether the layer still has the copy c where it made it.
func (w *layerWriter) still(c copiedFile) bool {
	fi, err := w.layer.Lstat(name(c.rel))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	held, err := c.f.Stat()
	return err == nil && os.SameFile(fi, held)
}

// symlink writes a symlink.
func (w *layerWriter) symlink(rel, target string, uid, gid int, mtime time.Time) error {
	if err := w.clear(rel, false); err != nil {
		return err
	}
	w.forget(rel)
	if err := w.layer.Symlink(target, name(rel)); err != nil {
		return err
	}
	return w.finishEntry(rel, true, 0, uid, gid, mtime)
}

// finishEntry gives the entry rel its owner, mode and times, through its
// directory's descriptor and without following it.
func (w *layerWriter) finishEntry(rel string, isLink bool, mode fs.FileMode, uid, gid int, mtime time.Time) error {
	var dir *os.File
	base := "."
	var err error
	if rel == "" {
		dir, err = w.layer.Open(".")
	} else {
		dir, base, err = w.parent(rel)
	}
	if err != nil {
		return err
	}
	defer dir.Close()
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: "/" + rel, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: "/" + rel, Err: err}
	}
	if isLink != (st.Mode&unix.S_IFMT == unix.S_IFLNK) {
		return fmt.Errorf("/%s changed type while the layer was written", rel)
	}
	if err := w.chown(fd, dir, base, rel, isLink, uid, gid); err != nil {
		return err
	}
	if !isLink {
		// The descriptor's /proc link names its inode, not a path.
		if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), fsutil.UnixPerm(mode)); err != nil {
			return &fs.PathError{Op: "chmod", Path: "/" + rel, Err: err}
		}
	}
	if mtime.IsZero() {
		mtime = time.Now()
	}
	if !w.epoch.IsZero() && mtime.After(w.epoch) {
		mtime = w.epoch
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(int(dir.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: "/" + rel, Err: err}
	}
	return nil
}

// chown stores a container owner the way the store does, on the entry
// fd (O_PATH) holds, base of the directory dir.
func (w *layerWriter) chown(fd int, dir *os.File, base, rel string, isLink bool, uid, gid int) error {
	if w.ids.Single() {
		if uid == 0 && gid == 0 || isLink {
			return nil // symlinks cannot carry user xattrs: lost, as the store loses them
		}
		v := strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
		err := unix.Lsetxattr(fsutil.FDPath(int(dir.Fd()), base), layertar.XattrOwner, []byte(v), 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) {
			return &fs.PathError{Op: "setxattr", Path: "/" + rel, Err: err}
		}
		return nil
	}
	hu, hg := hostOwner(w.ids, uid, gid)
	if err := unix.Fchownat(fd, "", hu, hg, unix.AT_EMPTY_PATH); err != nil {
		return &fs.PathError{Op: "lchown", Path: "/" + rel, Err: err}
	}
	return nil
}

// hostOwner is the host owner of the container owner uid:gid under ids:
// the overflow id's for one the map lacks.
func hostOwner(ids idmap.Map, uid, gid int) (int, int) {
	hu, ok := ids.HostUID(uint32(uid))
	if !ok || uid < 0 {
		hu, _ = ids.HostUID(layertar.OverflowID)
	}
	hg, ok := ids.HostGID(uint32(gid))
	if !ok || gid < 0 {
		hg, _ = ids.HostGID(layertar.OverflowID)
	}
	return int(hu), int(hg)
}

// finish applies the directories' owners, modes and times, the deepest
// first, now that nothing more is written into them.
func (w *layerWriter) finish() error {
	w.closeCopies()
	rels := make([]string, 0, len(w.dirs))
	for rel := range w.dirs {
		rels = append(rels, rel)
	}
	slices.Sort(rels)
	for i := len(rels) - 1; i >= 0; i-- {
		m := w.dirs[rels[i]]
		if err := w.finishEntry(rels[i], false, m.mode, m.uid, m.gid, m.mtime); err != nil {
			return err
		}
	}
	return nil
}
