package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/untrusted"
)

// Cache mounts are the directories RUN --mount=type=cache steps keep
// their files in across builds, under cachemounts/: "<hash of id>.<n>",
// each with a lock file beside it ("<name>.lock") that its users hold,
// shared or exclusive, while a step runs. They are never part of a layer;
// Prune removes those no step is using.

// CacheSharing is how concurrent users share a cache mount.
type CacheSharing int

// The sharing modes.
const (
	CacheShared  CacheSharing = iota // every user at once
	CachePrivate                     // one user per directory: a busy one gets a directory of its own
	CacheLocked                      // one user at a time; the others wait
)

// CacheMount is a cache mount directory in use; Release it when the step
// is over.
type CacheMount struct {
	Path string
	lock *fileLock
}

// Release lets other users and Prune have the directory. It is safe to
// call twice.
func (c *CacheMount) Release() { c.lock.unlock() }

// maxPrivateCaches bounds the directories one id gets with CachePrivate.
const maxPrivateCaches = 64

// CacheMount returns the cache mount directory of id, creating it when
// missing: init fills a new directory before anyone sees it. It waits
// (until ctx ends) for a directory locked by another user when sharing
// asks for that.
func (s *Store) CacheMount(ctx context.Context, id string, sharing CacheSharing, init func(dir string) error) (*CacheMount, error) {
	sum := sha256.Sum256([]byte(id))
	base := hex.EncodeToString(sum[:16])
	dir := s.path("cachemounts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache mount: %w", err)
	}
	// Lock files stay when Prune removes a directory, so that two users
	// never lock two files of one name.
	for n := 0; ; n++ {
		if n == maxPrivateCaches {
			return nil, fmt.Errorf("cache mount %q: %d private directories in use", id, n)
		}
		name := base + "." + strconv.Itoa(n)
		lockPath := filepath.Join(dir, name+".lock")
		var l *fileLock
		var err error
		switch sharing {
		case CacheShared:
			l, err = lockFile(ctx, lockPath, false)
		case CacheLocked:
			l, err = lockFile(ctx, lockPath, true)
		default:
			l, err = tryLockFile(lockPath, true)
			if errors.Is(err, errLocked) {
				continue // busy: the next one
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cache mount: %w", err)
		}
		p := filepath.Join(dir, name)
		if err := s.makeCacheDir(p, init); err != nil {
			l.unlock()
			return nil, fmt.Errorf("cache mount: %w", err)
		}
		return &CacheMount{Path: p, lock: l}, nil
	}
}

// makeCacheDir makes the directory p with init, atomically, unless it is
// there already.
func (s *Store) makeCacheDir(p string, init func(string) error) error {
	if fi, err := os.Lstat(p); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		return nil
	}
	tmp, err := s.TempDir(context.Background(), "cachemount")
	if err != nil {
		return err
	}
	defer tmp.Remove()
	d := filepath.Join(tmp.Path(), "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		return err
	}
	if err := init(d); err != nil {
		return err
	}
	if err := os.Rename(d, p); err != nil {
		if _, serr := os.Lstat(p); serr == nil {
			return nil // another user made it first
		}
		return err
	}
	return nil
}

// cacheMounts returns the names of the cache mount directories.
func (s *Store) cacheMounts() []string {
	es, _ := os.ReadDir(s.path("cachemounts"))
	var out []string
	for _, e := range es {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".lock") {
			out = append(out, e.Name())
		}
	}
	return out
}

// pruneCacheMounts removes the cache mount directories no user holds.
// The caller holds the store exclusively.
func (s *Store) pruneCacheMounts(ctx context.Context) (n int, bytes int64, err error) {
	for _, name := range s.cacheMounts() {
		if err := ctx.Err(); err != nil {
			return n, bytes, err
		}
		lockPath := s.path("cachemounts", name+".lock")
		l, err := tryLockFile(lockPath, true)
		if err != nil {
			continue // in use
		}
		size := treeSize(ctx, s.path("cachemounts", name))
		tmp := s.path("tmp", "prune-"+randomName())
		err = os.Rename(s.path("cachemounts", name), tmp)
		if err == nil {
			err = untrusted.RemoveAll(tmp) // RUN steps wrote it
		}
		l.unlock()
		if err != nil {
			return n, bytes, fmt.Errorf("pruning cache mount %s: %w", name, err)
		}
		n++
		bytes += size
	}
	return n, bytes, nil
}

// cacheMountUsage counts the cache mount directories and the bytes of
// their files.
func (s *Store) cacheMountUsage(ctx context.Context) (n int, bytes int64) {
	for _, name := range s.cacheMounts() {
		n++
		bytes += treeSize(ctx, s.path("cachemounts", name))
	}
	return n, bytes
}

// treeSize adds up the sizes of the regular files under p. Build steps
// may be writing there: the walk goes through internal/untrusted's
// descriptors and stays inside p whatever they do.
func treeSize(ctx context.Context, p string) int64 {
	n, _ := untrusted.Size(ctx, p) // RUN steps wrote it: through descriptors
	return n
}
