package snapshot

import (
	"fmt"
	"io/fs"

	"github.com/ccsandbox/sandbox/internal/image"
)

// Limits of one capture. The sandbox chooses what its upper directory
// holds and the host pays for it: time to hash the apparent size of every
// file (holes read as zeros, as the content hash defines it) and memory
// to remember each file of several links until the capture ends. The
// bounds are those image.Unpack puts on one layer by default, so that a
// snapshot never holds what the store would refuse to take in.
const (
	// maxFileBytes bounds the sum of the apparent sizes of the regular
	// files of one capture (hard links counted once):
	// image.DefaultMaxBytes, 32 GiB, some 20 s of one core to hash.
	maxFileBytes = image.DefaultMaxBytes
	// maxLinkBytes bounds the memory a capture keeps for hard links: the
	// path of each file of several links, plus linkCost: as much as
	// image.DefaultMaxNameBytes, 256 MiB, the names unpacking a layer
	// keeps at most.
	maxLinkBytes = image.DefaultMaxNameBytes
	// linkCost is what a remembered link costs besides its path: its key
	// and value in the map and their share of the map's table.
	linkCost = 128
)

// shortPath returns p, cut to its first 64 bytes when longer, for errors.
func shortPath(p string) string {
	if len(p) <= 64 {
		return p
	}
	return p[:64] + "..."
}

// tooMuchData returns the error of a capture whose files, up to and
// including p's, pass limit bytes; it matches image.ErrTooLarge.
func tooMuchData(p string, limit int64) error {
	return &fs.PathError{Op: "snapshot", Path: shortPath(p), Err: fmt.Errorf(
		"%w: the files hold more than %d bytes (holes count), the most one snapshot takes (image.DefaultMaxBytes, %s)",
		image.ErrTooLarge, limit, sizeString(limit))}
}

// tooManyLinks returns the error of a capture whose files of several
// links, up to p, pass limit bytes of remembered paths; it matches
// image.ErrTooLarge.
func tooManyLinks(p string, limit int64) error {
	return &fs.PathError{Op: "snapshot", Path: shortPath(p), Err: fmt.Errorf(
		"%w: files of several links need more than %d bytes to remember (%d per file and its path), the most one snapshot keeps (image.DefaultMaxNameBytes, %s)",
		image.ErrTooLarge, limit, linkCost, sizeString(limit))}
}

// sizeString writes n bytes in the largest binary unit that divides it.
func sizeString(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
