package dockerfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"golang.org/x/sys/unix"
)

// contextFS is the build context: a host directory less what
// .dockerignore leaves out. Files in it belong to container root, as
// Docker sends them. A directory that .dockerignore leaves out is still
// there when an exception includes something inside it.
type contextFS struct {
	root   string
	ignore *ignoreRules

	mu      sync.Mutex      // stages read the context at once
	visible map[string]bool // memo of visibleDir; guarded by mu
}

func newContextFS(root string, ignore *ignoreRules) *contextFS {
	return &contextFS{root: root, ignore: ignore, visible: map[string]bool{}}
}

// rawLstat describes rel without looking at .dockerignore. rel's parent
// must be symlink-free (resolve makes it so), so no host symlink is
// followed.
func (c *contextFS) rawLstat(rel string) (*entry, error) {
	p := filepath.Join(c.root, filepath.FromSlash(rel))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: rel, Err: err}
	}
	e := entryOf(&st, p)
	if e.mode.Type() == fs.ModeSymlink {
		t, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		e.link = t
	}
	return e, nil
}

func (c *contextFS) lstat(rel string) (*entry, error) {
	e, err := c.rawLstat(rel)
	if err != nil {
		return nil, err
	}
	if rel != "" && c.ignore.excluded(rel) && !(e.mode.IsDir() && c.visibleDir(rel)) {
		return nil, &fs.PathError{Op: "lstat", Path: rel, Err: fs.ErrNotExist}
	}
	return e, nil
}

// visibleDir reports whether the excluded directory rel holds something
// an exception includes.
func (c *contextFS) visibleDir(rel string) bool {
	if !c.ignore.exceptions {
		return false
	}
	c.mu.Lock()
	v, ok := c.visible[rel]
	c.mu.Unlock()
	if ok {
		return v
	}
	names, _ := c.rawReadDir(rel)
	v = false // no cycle is possible: no symlink is followed
	for _, n := range names {
		child := joinRel(rel, n)
		if _, err := c.lstat(child); err == nil {
			v = true
			break
		}
	}
	c.mu.Lock()
	c.visible[rel] = v
	c.mu.Unlock()
	return v
}

func (c *contextFS) rawReadDir(rel string) ([]string, error) {
	f, err := os.Open(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

func (c *contextFS) readDir(rel string) ([]string, error) {
	names, err := c.rawReadDir(rel)
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if _, err := c.lstat(joinRel(rel, n)); err == nil {
			out = append(out, n)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return out, nil
}

// noContext is the context of a build that has none: every source is
// missing.
type noContext struct{}

func (noContext) lstat(rel string) (*entry, error) {
	if rel == "" {
		return &entry{mode: fs.ModeDir | 0o755}, nil
	}
	return nil, &fs.PathError{Op: "lstat", Path: rel, Err: fs.ErrNotExist}
}

func (noContext) readDir(string) ([]string, error) { return nil, nil }

// entryOf converts a stat result; ownership is left at root.
func entryOf(st *unix.Stat_t, host string) *entry {
	return &entry{
		mode:  fsutil.FileMode(st.Mode),
		size:  st.Size,
		mtime: timeOf(st.Mtim),
		host:  host,
	}
}
