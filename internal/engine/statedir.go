package engine

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/ccsandbox/sandbox/internal/untrusted"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"golang.org/x/sys/unix"
)

// Every instance has a state directory in its process's directory under a
// state root, which the process flocks while it has instances there: one
// descriptor per process and root, not one per instance (ten thousand
// sandboxes would otherwise hold ten thousand). A process that dies
// without closing its instances leaves its directory behind unlocked, and
// the first Start in a later process sweeps it away. Several processes (helpers, other programs)
// share one root, so a sweep must never take a directory that another
// process has made but not locked yet: creators hold the root's lock
// shared from mkdir to flock, and a sweep holds it exclusive while it
// lists and locks the directories it will remove.

// newID returns a fresh instance id.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// procDir is this process's directory under one state root, held while
// instances use it.
type procDir struct {
	path  string
	lock  *os.File // path, flocked
	users int
}

var (
	procDirsMu sync.Mutex
	procDirs   = map[string]*procDir{} // guarded by procDirsMu: by state root
)

// createStateDir makes a fresh state directory for instance id in this
// process's directory under root, and returns its path and the function
// that gives it up once the instance has removed it (the last instance
// out removes the process's directory and unlocks it). It returns an
// error if a directory cannot be made or locked.
func createStateDir(root, id string) (string, func(), error) {
	procDirsMu.Lock()
	defer procDirsMu.Unlock()
	pd := procDirs[root]
	if pd == nil {
		var err error
		if pd, err = newProcDir(root); err != nil {
			return "", nil, err
		}
		procDirs[root] = pd
	}
	dir := filepath.Join(pd.path, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if pd.users == 0 {
			pd.drop(root)
		}
		return "", nil, fmt.Errorf("creating the instance state directory: %w", err)
	}
	pd.users++
	return dir, func() {
		procDirsMu.Lock()
		defer procDirsMu.Unlock()
		if pd.users--; pd.users == 0 {
			pd.drop(root)
		}
	}, nil
}

// newProcDir makes and locks a directory for this process under root.
func newProcDir(root string) (*procDir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("creating the instance state directory: %w", err)
	}
	rootLock, err := lockPath(root, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer rootLock.Close()
	dir := filepath.Join(root, "p"+newID())
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the instance state directory: %w", err)
	}
	lock, err := lockPath(dir, unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		untrusted.RemoveAll(dir)
		return nil, err
	}
	return &procDir{path: dir, lock: lock}, nil
}

// drop removes the process's directory, empty once its last instance has
// gone (what it still holds is left to a later sweep), and unlocks it.
// The caller holds procDirsMu.
func (pd *procDir) drop(root string) {
	os.Remove(pd.path)
	pd.lock.Close()
	delete(procDirs, root)
}

// lockPath opens path and flocks it with how, held while the returned file
// is open. It returns an error if path cannot be opened or, with
// LOCK_NB, is locked already.
func lockPath(path string, how int) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := fsutil.Flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

var swept sync.Map // state root → struct{}

// sweepOnce runs sweep once per state root and process.
func sweepOnce(root string, log *slog.Logger) {
	if _, loaded := swept.LoadOrStore(root, struct{}{}); loaded {
		return
	}
	sweep(root, log)
}

// sweep removes the state directories under root that no instance holds.
// It holds the root's lock only while it lists and locks them, so that
// starts elsewhere wait for the listing, not for the removals.
func sweep(root string, log *slog.Logger) {
	for _, lock := range claimStale(root) {
		if err := untrusted.RemoveAll(lock.Name()); err != nil {
			log.Warn("removing a stale sandbox state directory", "dir", lock.Name(), "err", err)
		}
		lock.Close()
	}
}

// claimStale locks, under the root's exclusive lock, every directory in
// root that no instance holds, and returns them locked.
func claimStale(root string) []*os.File {
	rootLock, err := lockPath(root, unix.LOCK_EX)
	if err != nil {
		return nil // no root yet: nothing to sweep
	}
	defer rootLock.Close()
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var stale []*os.File
	for _, e := range entries {
		lock, err := lockPath(filepath.Join(root, e.Name()), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			continue // in use, or not ours
		}
		stale = append(stale, lock)
	}
	return stale
}
