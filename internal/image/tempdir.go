package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempDir is a private directory under the store's tmp/, on the store's
// filesystem, so that what is built in it can be renamed into the store
// (AddLayerDir). A lock held while it exists tells Prune it is in use; a
// crashed owner's TempDir is removed by the next Prune.
type TempDir struct {
	path string
	lock *fileLock
}

// TempDir creates a TempDir whose name starts with prefix (letters,
// digits, '-' and '_'). It returns an error when the store is not
// writable or ctx ends while Prune runs.
func (s *Store) TempDir(ctx context.Context, prefix string) (*TempDir, error) {
	if strings.ContainsAny(prefix, "/.") {
		return nil, fmt.Errorf("layer store temp dir: bad prefix %q", prefix)
	}
	hold, err := s.shared(ctx)
	if err != nil {
		return nil, err
	}
	defer hold.unlock()
	name := prefix + "-" + randomName()
	path := s.path("tmp", name)
	l, err := tryLockFile(path+".lock", true)
	if err != nil {
		return nil, fmt.Errorf("layer store temp dir: %w", err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		l.unlock()
		os.Remove(path + ".lock")
		return nil, fmt.Errorf("layer store temp dir: %w", err)
	}
	return &TempDir{path: path, lock: l}, nil
}

// Path returns the directory's path.
func (t *TempDir) Path() string { return t.path }

// Remove deletes the directory and what is left in it, and releases its
// lock. It is safe to call twice.
func (t *TempDir) Remove() error {
	if t.lock == nil {
		return nil
	}
	err := removeAll(t.path)
	os.Remove(t.path + ".lock")
	t.lock.unlock()
	t.lock = nil
	return err
}

// removeAll removes a tree that may hold directories without write
// permission (an unprivileged user's copy of a read-only directory).
func removeAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || !os.IsPermission(err) {
		return err
	}
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

// isTempLock reports whether a tmp/ entry is a TempDir's lock file.
func isTempLock(name string) bool {
	return filepath.Ext(name) == ".lock"
}
