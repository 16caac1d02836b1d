package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ImageInfo describes an image of the layer store, as Images lists it.
type ImageInfo struct {
	Digest     string    // "sha256:...", as Image.Digest returns it
	References []string  // the references it was pulled as, sorted; none for a loaded image
	Platform   string    // "os/arch" or "os/arch/variant": "linux/amd64"
	Created    time.Time // when its config says it was made; zero when it says not
	Layers     int       // how many layers it has
	Size       int64     // bytes of file data in its layers (a layer shared with other images counts for each)
}

// Images lists the images of the layer store (WithCacheDir, or the
// default cache directory): those pulled, loaded or left by a build's FROM
// and not removed with RemoveImage, sorted by their first reference, then
// by digest (images without references last). An image whose layers are
// no longer all in the store is left out, since it cannot start. It
// returns an error when the store cannot be opened or read.
func Images(ctx context.Context, opts ...StoreOption) ([]ImageInfo, error) {
	s, err := storeFromOptions(opts)
	if err != nil {
		return nil, err
	}
	digests, err := s.Images()
	if err != nil {
		return nil, fmt.Errorf("sandbox.Images: %w", err)
	}
	refs, err := s.Refs()
	if err != nil {
		return nil, fmt.Errorf("sandbox.Images: %w", err)
	}
	names := map[v1.Hash][]string{}
	for _, r := range refs {
		if !slices.Contains(names[r.Image], r.Name) {
			names[r.Image] = append(names[r.Image], r.Name)
		}
	}
	var out []ImageInfo
	for _, d := range digests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := s.Image(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile, or a layer is gone
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox.Images: %w", err)
		}
		info, err := imageInfo(s, rec)
		if err != nil {
			return nil, fmt.Errorf("sandbox.Images: %w", err)
		}
		info.References = names[d]
		slices.Sort(info.References)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b ImageInfo) int {
		switch {
		case len(a.References) > 0 && len(b.References) == 0:
			return -1
		case len(a.References) == 0 && len(b.References) > 0:
			return 1
		case len(a.References) > 0:
			if c := strings.Compare(a.References[0], b.References[0]); c != 0 {
				return c
			}
		}
		return strings.Compare(a.Digest, b.Digest)
	})
	return out, nil
}

// imageInfo describes one recorded image.
func imageInfo(s *image.Store, rec image.ImageRecord) (ImageInfo, error) {
	cfg, err := rec.ConfigFile()
	if err != nil {
		return ImageInfo{}, fmt.Errorf("image %s: %w", rec.Digest, err)
	}
	info := ImageInfo{
		Digest:   rec.Digest.String(),
		Platform: cfg.OS + "/" + cfg.Architecture,
		Created:  cfg.Created.Time,
		Layers:   len(rec.Layers),
	}
	if cfg.Variant != "" {
		info.Platform += "/" + cfg.Variant
	}
	for _, id := range rec.Layers {
		li, err := s.Layer(id)
		if err != nil {
			return ImageInfo{}, fmt.Errorf("image %s: %w", rec.Digest, err)
		}
		info.Size += li.Size
	}
	return info, nil
}

// OpenImage returns the image of the layer store whose digest is digest
// ("sha256:...", as Image.Digest returns it and Images lists it), asking
// no registry: a pulled image, or one loaded from a layout or an archive.
// It returns an error for a malformed digest, and one matching
// fs.ErrNotExist when the store has no such image or lacks one of its
// layers.
func OpenImage(ctx context.Context, digest string, opts ...StoreOption) (*Image, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("sandbox.OpenImage: %w", err)
	}
	s, err := storeFromOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, err := s.Image(h)
	if err != nil {
		return nil, fmt.Errorf("sandbox.OpenImage: %w", err)
	}
	return newImage(s, rec, "")
}
