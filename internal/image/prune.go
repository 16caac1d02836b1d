package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccsandbox/sandbox/internal/untrusted"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PruneReport tells what Prune removed.
type PruneReport struct {
	Layers int   // unreferenced layers removed
	Bytes  int64 // their file data
	Temp   int   // leftovers of crashed or interrupted work removed
	Refs   int   // references to images no longer recorded removed

	CacheMounts int   // cache mount directories removed
	CacheBytes  int64 // their file data
}

// Prune removes every layer that no record and no live lease lists, the
// leftovers of crashed work under tmp/, stale leases, references to
// removed images and the cache mounts no build step is using. It waits (until ctx ends) for writers in progress to
// finish and keeps new ones out meanwhile.
func (s *Store) Prune(ctx context.Context) (PruneReport, error) {
	var rep PruneReport
	l, err := lockFile(ctx, s.path("store.lock"), true)
	if err != nil {
		return rep, fmt.Errorf("locking layer store: %w", err)
	}
	defer l.unlock()

	rep.Temp = s.pruneTemp()
	live, err := s.live(true)
	if err != nil {
		return rep, err
	}
	refs, err := s.Refs()
	if err != nil {
		return rep, err
	}
	for _, r := range refs {
		if _, err := os.Stat(s.recordPath(KindImage, r.Image.Hex)); errors.Is(err, fs.ErrNotExist) {
			if s.DeleteRef(r.Key) == nil {
				rep.Refs++
			}
		}
	}
	ids, err := s.Layers()
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		if live[id] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		li, _ := s.Layer(id)
		// Out of layers/ first, so that it is gone at once; a crash
		// mid-removal leaves only a tmp/ entry.
		tmp := s.path("tmp", "prune-"+randomName())
		if err := os.Rename(s.layerPath(id), tmp); err != nil {
			return rep, fmt.Errorf("pruning layer %s: %w", id, err)
		}
		if err := untrusted.RemoveAll(tmp); err != nil {
			return rep, fmt.Errorf("pruning layer %s: %w", id, err)
		}
		os.Remove(s.path("locks", id.Hex+".lock"))
		rep.Layers++
		rep.Bytes += li.Size
		s.log.Debug("layer pruned", "id", id)
	}
	syncDir(s.path("layers", "sha256"))
	if rep.CacheMounts, rep.CacheBytes, err = s.pruneCacheMounts(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// pruneTemp removes tmp/ entries whose owner is gone (their lock is free)
// and records' temporary files. The caller holds the store exclusively.
func (s *Store) pruneTemp() int {
	n := 0
	es, _ := os.ReadDir(s.path("tmp"))
	for _, e := range es {
		name := e.Name()
		if isTempLock(name) {
			if _, err := os.Lstat(s.path("tmp", strings.TrimSuffix(name, ".lock"))); err == nil {
				continue // handled with its directory
			}
		}
		lockPath := s.path("tmp", strings.TrimSuffix(name, ".lock")+".lock")
		l, err := tryLockFile(lockPath, true)
		if err != nil {
			continue // in use
		}
		if !isTempLock(name) {
			if err := untrusted.RemoveAll(s.path("tmp", name)); err != nil {
				s.log.Warn("layer store: removing a leftover", "path", s.path("tmp", name), "err", err)
				l.unlock()
				continue
			}
			n++
		}
		os.Remove(lockPath)
		l.unlock()
	}
	kinds, _ := os.ReadDir(s.path("records"))
	for _, k := range kinds {
		es, _ := os.ReadDir(s.path("records", k.Name()))
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".") {
				os.Remove(s.path("records", k.Name(), e.Name()))
				n++
			}
		}
	}
	return n
}

// live returns the layers records and live leases keep. With clean, it
// removes stale leases (the caller holds the store exclusively).
func (s *Store) live(clean bool) (map[v1.Hash]bool, error) {
	live := make(map[v1.Hash]bool)
	recs, err := s.Records("")
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		for _, l := range r.Layers {
			live[l] = true
		}
	}
	es, err := os.ReadDir(s.path("leases"))
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		p := s.path("leases", e.Name())
		if l, err := tryLockFile(p, true); err == nil {
			if clean {
				os.Remove(p)
			}
			l.unlock()
			continue // its holder is gone
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var layers []v1.Hash
		if json.Unmarshal(b, &layers) == nil {
			for _, l := range layers {
				live[l] = true
			}
		}
	}
	return live, nil
}

// Usage is the store's disk use.
type Usage struct {
	Root        string
	Images      int   // recorded images
	Layers      int   // complete layers
	Bytes       int64 // their file data
	Reclaimable int64 // file data of layers Prune would remove
	Temp        int64 // bytes under tmp/: work in progress and leftovers
	CacheMounts int   // cache mount directories
	CacheBytes  int64 // their file data
}

// Usage reports the store's disk use from the layers' metadata and a walk
// of tmp/.
func (s *Store) Usage(ctx context.Context) (Usage, error) {
	u := Usage{Root: s.root}
	imgs, err := s.Images()
	if err != nil {
		return u, err
	}
	u.Images = len(imgs)
	live, err := s.live(false)
	if err != nil {
		return u, err
	}
	ids, err := s.Layers()
	if err != nil {
		return u, err
	}
	for _, id := range ids {
		li, err := s.Layer(id)
		if err != nil {
			continue
		}
		u.Layers++
		u.Bytes += li.Size
		if !live[id] {
			u.Reclaimable += li.Size
		}
	}
	filepath.WalkDir(s.path("tmp"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				u.Temp += fi.Size()
			}
		}
		return ctx.Err()
	})
	u.CacheMounts, u.CacheBytes = s.cacheMountUsage(ctx)
	return u, ctx.Err()
}
