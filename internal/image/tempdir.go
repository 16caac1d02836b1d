package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccsandbox/sandbox/internal/untrusted"
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

// Mkdir makes the directory name (one path element) in the TempDir, mode
// 0700, and returns it open.
func (t *TempDir) Mkdir(name string) (*os.File, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("layer store temp dir: bad name %q", name)
	}
	p := filepath.Join(t.path, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Remove deletes the directory and what is left in it, and releases its
// lock. It is safe to call twice.
func (t *TempDir) Remove() error {
	if t.lock == nil {
		return nil
	}
	err := untrusted.RemoveAll(t.path) // it may hold what a sandbox sent
	os.Remove(t.path + ".lock")
	t.lock.unlock()
	t.lock = nil
	return err
}

// isTempLock reports whether a tmp/ entry is a TempDir's lock file.
func isTempLock(name string) bool {
	return filepath.Ext(name) == ".lock"
}
