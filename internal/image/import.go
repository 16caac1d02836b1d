package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// LayerProgress reports how far one layer of an image has come.
type LayerProgress struct {
	Index, Count int     // the layer's position (0 is the lowest) and how many the image has
	Digest       v1.Hash // the blob's digest (its diffID where the source has no blob digest)
	Done, Total  int64   // bytes read so far and the blob's size (-1 when unknown)
	Cached       bool    // the layer was in the store already
	Complete     bool    // the layer is in the store now
}

// blobSource is one layer of an image being imported.
type blobSource struct {
	digest v1.Hash // of the blob, zero when the source gives the plain tar
	size   int64   // of the blob, -1 when unknown
	open   func() (io.ReadCloser, error)
}

// importOptions configure importImage.
type importOptions struct {
	progress func(LayerProgress)
	jobs     int
	verify   func(diffID v1.Hash) bool // see PullOptions.Verify
	checked  func(diffID v1.Hash)      // see PullOptions.Checked
	unlocked bool                      // see PullOptions.Unlocked
}

// reportChecked passes diffID, a layer read from its source and checked,
// to o.checked.
func (o importOptions) reportChecked(diffID v1.Hash) {
	if o.checked != nil {
		o.checked(diffID)
	}
}

// importImage adds an image's layers to the store (jobs at a time) and
// records the image under digest. rawConfig's diff_ids name the layers.
func (s *Store) importImage(ctx context.Context, digest v1.Hash, rawConfig []byte, blobs []blobSource, o importOptions) (ImageRecord, error) {
	cfg, err := parseConfig(rawConfig)
	if err != nil {
		return ImageRecord{}, err
	}
	if len(cfg.RootFS.DiffIDs) != len(blobs) {
		return ImageRecord{}, fmt.Errorf("image %s: its config lists %d layers and its manifest %d", digest, len(cfg.RootFS.DiffIDs), len(blobs))
	}
	release, err := s.Hold(ctx)
	if err != nil {
		return ImageRecord{}, err
	}
	defer release()

	var mu sync.Mutex // serializes progress calls
	report := func(p LayerProgress) {
		if o.progress != nil {
			mu.Lock()
			defer mu.Unlock()
			o.progress(p)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.jobs, 1))
	for i, b := range blobs {
		diffID := cfg.RootFS.DiffIDs[i]
		p := LayerProgress{Index: i, Count: len(blobs), Digest: b.digest, Total: b.size}
		if p.Digest == (v1.Hash{}) {
			p.Digest = diffID
		}
		if s.HasLayer(diffID) && (o.verify == nil || !o.verify(diffID)) {
			p.Cached, p.Complete, p.Done = true, true, max(b.size, 0)
			report(p)
			continue
		}
		g.Go(func() error { // a layer to fetch, or one held that must be fetched and checked all the same
			report(p)
			read := false
			src := LayerSource{DiffID: diffID, Digest: b.digest, Unlocked: o.unlocked, Open: func() (io.ReadCloser, error) {
				read = true
				return b.open()
			}}
			_, err := s.AddLayer(gctx, src, func(done int64) {
				q := p
				q.Done = done
				report(q)
			})
			if err != nil {
				return fmt.Errorf("layer %d of %d: %w", i+1, len(blobs), err)
			}
			switch {
			case read: // read and checked, whoever committed it
				o.reportChecked(diffID)
			case o.verify != nil && o.verify(diffID): // held before, or arrived meanwhile
				src.Open = b.open
				if err := s.VerifyLayer(gctx, src); err != nil {
					return fmt.Errorf("layer %d of %d: %w", i+1, len(blobs), err)
				}
				o.reportChecked(diffID)
			}
			q := p
			q.Complete = true
			if q.Total >= 0 {
				q.Done = q.Total
			}
			report(q)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return ImageRecord{}, err
	}
	rec := ImageRecord{Digest: digest, Config: rawConfig, Layers: cfg.RootFS.DiffIDs}
	if err := s.PutImage(ctx, rec); err != nil {
		return ImageRecord{}, err
	}
	return rec, nil
}

// sha256Of returns the sha256 digest of b.
func sha256Of(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// MaxConfigSize bounds an image's config, and a docker archive's
// manifest.json: each is read whole into memory, and a hostile image's
// could be of any size (its manifest names the config's size, and a
// layout's file or an archive's entry may hold more than that).
const MaxConfigSize = 8 << 20

// rawConfig reads img's config, whose manifest is m, refusing one larger
// than MaxConfigSize (ErrTooLarge) before reading it. open, when not nil,
// opens the config's bytes (a layout's blob file), read no further than
// the bound.
func rawConfig(img v1.Image, m *v1.Manifest, open func() (io.ReadCloser, error)) ([]byte, error) {
	if m.Config.Size > MaxConfigSize {
		return nil, fmt.Errorf("image config of %d bytes, more than %d: %w", m.Config.Size, MaxConfigSize, ErrTooLarge)
	}
	if open == nil {
		return img.RawConfigFile() // a registry's is read no further than m.Config.Size
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, MaxConfigSize+1))
	if err == nil && len(raw) > MaxConfigSize {
		err = fmt.Errorf("image config of more than %d bytes: %w", MaxConfigSize, ErrTooLarge)
	}
	return raw, err
}

// checkConfig checks a config blob against the digest the manifest gives.
func checkConfig(raw []byte, want v1.Hash) error {
	if got := sha256Of(raw); got != want {
		return fmt.Errorf("image config is %s, the manifest says %s: %w", got, want, ErrDigestMismatch)
	}
	return nil
}
