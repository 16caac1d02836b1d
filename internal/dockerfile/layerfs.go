package dockerfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"golang.org/x/sys/unix"
)

// The store's conventions for layer directories (see internal/layertar):
// a whiteout is a 0/0 character device, an opaque directory carries
// layertar.XattrOpaque, and in unprivileged mode a file's container owner
// is kept in layertar.XattrOwner ("uid:gid", absent for 0:0).

// layerFS is the merged view of layer directories in overlay format, as
// an overlay mount would show it: the highest layer that has a name
// decides what it is, a whiteout hides it, and a directory merges with
// the directories of the same name below it until one is opaque.
type layerFS struct {
	dirs []string // lowest first
	ids  idmap.Map
}

func newLayerFS(dirs []string, ids idmap.Map) *layerFS {
	return &layerFS{dirs: dirs, ids: ids}
}

// found is the result of a lookup: the highest file of a name and, for a
// directory, the layers (highest first) whose directories merge into it.
type found struct {
	host  string
	st    unix.Stat_t
	merge []int
}

// find looks rel up, following no symlink.
func (l *layerFS) find(rel string) (*found, error) {
	merge := make([]int, 0, len(l.dirs))
	for i := len(l.dirs) - 1; i >= 0; i-- {
		merge = append(merge, i)
	}
	f := &found{host: "", merge: merge}
	if len(l.dirs) > 0 {
		f.host = l.dirs[len(l.dirs)-1]
		if err := unix.Lstat(f.host, &f.st); err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: "/", Err: err}
		}
	} else {
		f.st.Mode = unix.S_IFDIR | 0o755
	}
	cur := ""
	for _, name := range splitRel(rel) {
		if f.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, &fs.PathError{Op: "lstat", Path: "/" + rel, Err: unix.ENOTDIR}
		}
		cur = joinRel(cur, name)
		next, err := l.child(f.merge, cur)
		if err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: "/" + rel, Err: err}
		}
		f = next
	}
	return f, nil
}

// child finds rel in the layers merge (highest first), where rel's
// parent is a directory.
func (l *layerFS) child(merge []int, rel string) (*found, error) {
	var f *found
	for _, li := range merge {
		p := filepath.Join(l.dirs[li], filepath.FromSlash(rel))
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			return nil, err
		}
		if isWhiteout(&st) {
			break
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if f == nil {
			f = &found{host: p, st: st}
			if !isDir {
				return f, nil
			}
		} else if !isDir {
			break
		}
		f.merge = append(f.merge, li)
		if opaque(p) {
			break
		}
	}
	if f == nil {
		return nil, fs.ErrNotExist
	}
	return f, nil
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func opaque(p string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(p, layertar.XattrOpaque, b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

func (l *layerFS) lstat(rel string) (*entry, error) {
	f, err := l.find(rel)
	if err != nil {
		return nil, err
	}
	e := entryOf(&f.st, f.host)
	e.uid, e.gid = ownerOf(l.ids, f.host, &f.st)
	if e.mode.Type() == fs.ModeSymlink {
		if e.link, err = os.Readlink(f.host); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// ownerOf returns the container owner of a layer file.
func ownerOf(ids idmap.Map, host string, st *unix.Stat_t) (int, int) {
	if ids.Single() {
		var b [64]byte
		n, err := unix.Lgetxattr(host, layertar.XattrOwner, b[:])
		if err != nil {
			return 0, 0
		}
		u, g, _ := strings.Cut(string(b[:n]), ":")
		uid, _ := strconv.Atoi(u)
		gid, _ := strconv.Atoi(g)
		return uid, gid
	}
	uid, ok := ids.ContainerUID(st.Uid)
	if !ok {
		uid = layertar.OverflowID
	}
	gid, ok := ids.ContainerGID(st.Gid)
	if !ok {
		gid = layertar.OverflowID
	}
	return int(uid), int(gid)
}

func (l *layerFS) readDir(rel string) ([]string, error) {
	f, err := l.find(rel)
	if err != nil {
		return nil, err
	}
	if f.st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, &fs.PathError{Op: "readdir", Path: "/" + rel, Err: unix.ENOTDIR}
	}
	seen := map[string]bool{}
	var out []string
	for _, li := range f.merge {
		d, err := os.Open(filepath.Join(l.dirs[li], filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			var st unix.Stat_t
			if unix.Lstat(filepath.Join(l.dirs[li], filepath.FromSlash(rel), n), &st) == nil && isWhiteout(&st) {
				continue
			}
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// readFile reads the file at the absolute path p, following symlinks.
func (l *layerFS) readFile(p string) ([]byte, error) {
	rel, err := resolve(l, cleanRel(p), true)
	if err != nil {
		return nil, err
	}
	e, err := l.lstat(rel)
	if err != nil {
		return nil, err
	}
	if !e.mode.IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: p, Err: unix.EINVAL}
	}
	if e.size > maxReadFile {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("%d bytes, more than the %d the builder reads", e.size, maxReadFile)}
	}
	data, err := readRegular(e.host, maxReadFile)
	switch {
	case errors.Is(err, errTooLong):
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("more than the %d bytes the builder reads", maxReadFile)}
	case err != nil:
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	return data, nil
}

// maxReadFile bounds a file of a layer the builder itself reads (the
// image's /etc/passwd and /etc/group, to look a user up): it runs in
// the builder's process, outside every sandbox's limits.
const maxReadFile = 4 << 20

func timeOf(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }
