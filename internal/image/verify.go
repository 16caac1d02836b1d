package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// VerifyLayer reads src exactly as AddLayer would, unpacking it into a
// temporary directory of the store that it then removes, and checks it
// against src.DiffID (and src.Digest when set): for a caller that must see
// a source serve a layer the store already holds. It fails as AddLayer
// would on the same bytes, so that its errors do not tell whether the
// store holds the layer. Errors: ErrDigestMismatch, ErrTooLarge, those of
// Unpack, or those of reading src.
func (s *Store) VerifyLayer(ctx context.Context, src LayerSource) error {
	if !validHash(src.DiffID) {
		return fmt.Errorf("verifying layer: bad diffID %q", src.DiffID)
	}
	td, err := s.TempDir(ctx, "layer")
	if err != nil {
		return err
	}
	defer td.Remove()
	fsDir := filepath.Join(td.Path(), "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return err
	}
	if _, err := s.unpackFrom(ctx, src, fsDir, nil); err != nil {
		return fmt.Errorf("layer %s: %w", src.DiffID, err)
	}
	return nil
}
