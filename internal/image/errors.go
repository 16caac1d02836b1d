package image

import (
	"errors"
	"fmt"
	"io/fs"
)

// Errors of the package, matched with errors.Is.
var (
	// ErrUnsafeEntry: an archive entry would escape the layer directory or
	// change what an earlier entry made (.., absolute name, a write below a
	// symlink, a hard link outside the layer, a duplicate or a change of
	// type).
	ErrUnsafeEntry = errors.New("unsafe archive entry")
	// ErrInvalidEntry: an archive entry is malformed (a bad type, an empty
	// name, data shorter than its header says).
	ErrInvalidEntry = errors.New("invalid archive entry")
	// ErrTooLarge: a layer is larger than the store accepts (see Limits),
	// or an image's config than MaxConfigSize.
	ErrTooLarge = errors.New("exceeds the size limit")
	// ErrDigestMismatch: content does not hash to the digest that names it.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrPlatform: an image is for another platform than the one wanted.
	ErrPlatform = errors.New("image platform mismatch")
	// ErrStoreMode: the store was made by root and is used by another user,
	// or the other way round.
	ErrStoreMode = errors.New("layer store belongs to another ownership mode")
)

// entryErr returns the error for an archive entry: a *fs.PathError whose
// Op is "unpack" and whose Path is the entry's name as the archive spells it.
func entryErr(name string, kind error, format string, args ...any) error {
	return &fs.PathError{Op: "unpack", Path: name, Err: fmt.Errorf("%w: "+format, append([]any{kind}, args...)...)}
}
