package dockerfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	root string
	ids  idmap.Map
	base *layerFS
	dirs map[string]dirMeta // every directory made, applied by finish
	// epoch, when not zero, is the latest time an entry gets
	// (Options.SourceDateEpoch).
	epoch time.Time
}

// dirMeta is what a directory of the layer gets once it is complete.
type dirMeta struct {
	mode     fs.FileMode
	uid, gid int
	mtime    time.Time
}

func newLayerWriter(root string, ids idmap.Map, base *layerFS) (*layerWriter, error) {
	w := &layerWriter{root: root, ids: ids, base: base, dirs: map[string]dirMeta{}}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	meta := dirMeta{mode: fs.ModeDir | 0o755}
	if e, err := base.lstat(""); err == nil {
		meta = dirMeta{mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime}
	}
	w.dirs[""] = meta
	return w, nil
}

func (w *layerWriter) host(rel string) string {
	return filepath.Join(w.root, filepath.FromSlash(rel))
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
		p := w.host(rel)
		if err := w.clear(p, true); err != nil {
			return err
		}
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	w.dirs[rel] = meta
	return nil
}

// clear removes what the layer has at p, unless it is a directory and
// keepDir is set.
func (w *layerWriter) clear(p string, keepDir bool) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() && keepDir {
		return nil
	}
	return untrusted.RemoveAll(p)
}

// file writes a regular file with the content of r.
func (w *layerWriter) file(rel string, r io.Reader, mode fs.FileMode, uid, gid int, mtime time.Time) error {
	p := w.host(rel)
	if err := w.clear(p, false); err != nil {
		return err
	}
	delete(w.dirs, rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
	return w.finishEntry(p, false, mode, uid, gid, mtime)
}

// copyFile writes a regular file with the content of the host file src.
func (w *layerWriter) copyFile(rel, src string, mode fs.FileMode, uid, gid int, mtime time.Time) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return w.file(rel, in, mode, uid, gid, mtime)
}

// symlink writes a symlink.
func (w *layerWriter) symlink(rel, target string, uid, gid int, mtime time.Time) error {
	p := w.host(rel)
	if err := w.clear(p, false); err != nil {
		return err
	}
	delete(w.dirs, rel)
	if err := os.Symlink(target, p); err != nil {
		return err
	}
	return w.finishEntry(p, true, 0, uid, gid, mtime)
}

// finishEntry gives a file or symlink its owner, mode and times.
func (w *layerWriter) finishEntry(p string, isLink bool, mode fs.FileMode, uid, gid int, mtime time.Time) error {
	if err := w.chown(p, isLink, uid, gid); err != nil {
		return err
	}
	if !isLink {
		if err := unix.Chmod(p, fsutil.UnixPerm(mode)); err != nil {
			return &fs.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	if mtime.IsZero() {
		mtime = time.Now()
	}
	if !w.epoch.IsZero() && mtime.After(w.epoch) {
		mtime = w.epoch
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}

// chown stores a container owner the way the store does.
func (w *layerWriter) chown(p string, isLink bool, uid, gid int) error {
	if w.ids.Single() {
		if uid == 0 && gid == 0 || isLink {
			return nil // symlinks cannot carry user xattrs: lost, as the store loses them
		}
		v := strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
		if err := unix.Lsetxattr(p, layertar.XattrOwner, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return &fs.PathError{Op: "setxattr", Path: p, Err: err}
		}
		return nil
	}
	hu, ok := w.ids.HostUID(uint32(uid))
	if !ok || uid < 0 {
		hu, _ = w.ids.HostUID(layertar.OverflowID)
	}
	hg, ok := w.ids.HostGID(uint32(gid))
	if !ok || gid < 0 {
		hg, _ = w.ids.HostGID(layertar.OverflowID)
	}
	if err := unix.Lchown(p, int(hu), int(hg)); err != nil {
		return &fs.PathError{Op: "lchown", Path: p, Err: err}
	}
	return nil
}

// finish applies the directories' owners, modes and times, the deepest
// first, now that nothing more is written into them.
func (w *layerWriter) finish() error {
	rels := make([]string, 0, len(w.dirs))
	for rel := range w.dirs {
		rels = append(rels, rel)
	}
	slices.Sort(rels)
	for i := len(rels) - 1; i >= 0; i-- {
		m := w.dirs[rels[i]]
		if err := w.finishEntry(w.host(rels[i]), false, m.mode, m.uid, m.gid, m.mtime); err != nil {
			return err
		}
	}
	return nil
}
