package engine

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/image"
)

// TestDiskTarBound: the snapshot of a disk of mb MiB may take twice the
// disk and 16 MiB (image.Unpack holds the tar's bytes and what it unpacks
// to to it: its "too large" cases), and its error matches
// image.ErrTooLarge and names the disk; a disk past 16 GiB leaves
// image.DefaultMaxBytes as the bound.
func TestDiskTarBound(t *testing.T) {
	limit, err := diskTarBound(1)
	if want := int64(2<<20 + 16<<20); limit != want {
		t.Errorf("a disk of 1 MiB: bound %d, want %d", limit, want)
	}
	if !errors.Is(err, image.ErrTooLarge) || !strings.Contains(err.Error(), "disk of 1 MiB") {
		t.Errorf("a disk of 1 MiB: error %v, want image.ErrTooLarge naming the disk", err)
	}
	for _, mb := range []uint64{16 << 10, math.MaxUint64} {
		if l, _ := diskTarBound(mb); l != image.DefaultMaxBytes {
			t.Errorf("a disk of %d MiB: bound %d, want image.DefaultMaxBytes", mb, l)
		}
	}
}
