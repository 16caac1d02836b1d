package image

import "context"

// VerifyLayer reads src exactly as AddLayer would, unpacking it into a
// temporary directory of the store that it then removes, and checks it
// against src.DiffID (and src.Digest when set): for a caller that must see
// a source serve a layer the store already holds. It fails as AddLayer
// would on the same bytes, so that its errors do not tell whether the
// store holds the layer. Errors: ErrDigestMismatch, ErrTooLarge, those of
// Unpack, or those of reading src.
func (s *Store) VerifyLayer(ctx context.Context, src LayerSource) error {
	if err := src.check(); err != nil {
		return err
	}
	td, _, err := s.unpackTemp(ctx, src, nil)
	if err != nil {
		return err
	}
	return td.Remove()
}
