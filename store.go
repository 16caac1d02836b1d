package sandbox

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// StoreUsage is the layer store's disk use, as DiskUsage reports it.
type StoreUsage struct {
	Dir         string // the store's directory
	Images      int    // images recorded (pulled or loaded and not removed)
	Layers      int    // unpacked layers, images' and snapshots'
	Bytes       int64  // bytes of file data in those layers
	Reclaimable int64  // bytes of file data Prune would free now
	Temp        int64  // bytes of work in progress and crash leftovers
	CacheMounts int    // build cache mounts (RUN --mount=type=cache) kept
	CacheBytes  int64  // bytes of file data in them
}

// PruneResult tells what Prune removed.
type PruneResult struct {
	Layers int   // unreferenced layers removed
	Bytes  int64 // bytes of file data they held
	Temp   int   // leftovers of interrupted work removed

	CacheMounts int   // build cache mounts removed
	CacheBytes  int64 // bytes of file data they held
}

// DiskUsage reports the disk use of the layer store (WithCacheDir, or the
// default cache directory). It returns an error when the store cannot be
// opened or read.
func DiskUsage(ctx context.Context, opts ...StoreOption) (StoreUsage, error) {
	s, err := storeFromOptions(opts)
	if err != nil {
		return StoreUsage{}, err
	}
	u, err := s.Usage(ctx)
	if err != nil {
		return StoreUsage{}, fmt.Errorf("sandbox.DiskUsage: %w", err)
	}
	return StoreUsage{Dir: u.Root, Images: u.Images, Layers: u.Layers, Bytes: u.Bytes, Reclaimable: u.Reclaimable, Temp: u.Temp,
		CacheMounts: u.CacheMounts, CacheBytes: u.CacheBytes}, nil
}

// Prune removes from the layer store every layer that no image, snapshot
// or running sandbox uses, what interrupted work left behind, and the
// build cache mounts (RUN --mount=type=cache) no build is using. Images
// stay until RemoveImage. It waits for pulls and loads in progress to
// finish (until ctx ends) and returns what it removed, or an error when
// the store cannot be opened or a removal fails.
func Prune(ctx context.Context, opts ...StoreOption) (PruneResult, error) {
	s, err := storeFromOptions(opts)
	if err != nil {
		return PruneResult{}, err
	}
	r, err := s.Prune(ctx)
	if err != nil {
		return PruneResult{}, fmt.Errorf("sandbox.Prune: %w", err)
	}
	return PruneResult{Layers: r.Layers, Bytes: r.Bytes, Temp: r.Temp, CacheMounts: r.CacheMounts, CacheBytes: r.CacheBytes}, nil
}

// RemoveImage forgets an image so that a later Prune can free its layers:
// ref is a digest ("sha256:...", as Image.Digest returns it) or a
// reference that was pulled (every platform of it). It returns an error
// matching fs.ErrNotExist when the store has no such image.
func RemoveImage(ctx context.Context, ref string, opts ...StoreOption) error {
	s, err := storeFromOptions(opts)
	if err != nil {
		return err
	}
	if h, err := v1.NewHash(ref); err == nil {
		return s.DeleteImage(h)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("sandbox.RemoveImage: parsing reference %q: %w", ref, err)
	}
	refs, err := s.Refs()
	if err != nil {
		return fmt.Errorf("sandbox.RemoveImage: %w", err)
	}
	found := false
	for _, x := range refs {
		if x.Name == r.Name() {
			found = true
			if err := s.DeleteRef(x.Key); err != nil {
				return fmt.Errorf("sandbox.RemoveImage: %w", err)
			}
			if !stillReferenced(refs, x) {
				s.DeleteImage(x.Image)
			}
		}
	}
	if !found {
		return fmt.Errorf("sandbox.RemoveImage: %s: %w", r.Name(), fs.ErrNotExist)
	}
	return nil
}

// stillReferenced reports whether another ref than x names x's image.
func stillReferenced(refs []image.Ref, x image.Ref) bool {
	for _, r := range refs {
		if r.Key != x.Key && r.Image == x.Image && r.Name != x.Name {
			return true
		}
	}
	return false
}

func storeFromOptions(opts []StoreOption) (*image.Store, error) {
	var o pullOptions
	for _, opt := range opts {
		if err := opt.applyPull(&o); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	return openStore(&o.storeOptions)
}
