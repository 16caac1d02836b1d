package image

import (
	"context"
	"crypto/sha256"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// VerifyLayer reads src as AddLayer would (decompressed as its first bytes
// say unless src.Plain, within the store's size limit) and checks it against src.DiffID
// (and src.Digest when set), writing nothing: for a caller that must see a
// source serve a layer the store already holds. Errors: ErrDigestMismatch,
// ErrTooLarge, or those of reading src.
func (s *Store) VerifyLayer(ctx context.Context, src LayerSource) error {
	if !validHash(src.DiffID) {
		return fmt.Errorf("verifying layer: bad diffID %q", src.DiffID)
	}
	rc, err := src.Open()
	if err != nil {
		return fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	diffHash, blobHash := sha256.New(), sha256.New()
	limit := s.limits.withDefaults().MaxBytes
	if err := decompress(&countReader{r: rc, h: blobHash}, &cappedDiscard{left: limit}, diffHash, src.Plain); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("layer %s: %w", src.DiffID, err)
	}
	if src.Digest != (v1.Hash{}) {
		if err := checkHash(blobHash, src.Digest, "blob"); err != nil {
			return fmt.Errorf("layer %s: %w", src.DiffID, err)
		}
	}
	if err := checkHash(diffHash, src.DiffID, "uncompressed layer"); err != nil {
		return fmt.Errorf("layer %s: %w", src.DiffID, err)
	}
	return nil
}

// cappedDiscard discards what it is given, failing with ErrTooLarge past
// left bytes.
type cappedDiscard struct{ left int64 }

func (c *cappedDiscard) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, ErrTooLarge
	}
	c.left -= int64(len(p))
	return len(p), nil
}
