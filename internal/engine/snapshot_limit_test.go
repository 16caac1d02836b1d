package engine

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"

	"github.com/ccsandbox/sandbox/internal/image"
)

// TestDiskTarLimit: the tar of a disk of mb MiB passes up to twice the
// disk and 16 MiB, and fails with image.ErrTooLarge one byte past it; a
// disk past 16 GiB leaves image.DefaultMaxBytes as the bound.
func TestDiskTarLimit(t *testing.T) {
	const mb = 1
	limit := int64(2<<20 + 16<<20)
	for _, n := range []int64{limit - 1, limit, limit + 1} {
		r := newDiskTarLimit(iotest.HalfReader(bytes.NewReader(make([]byte, n))), mb)
		got, err := io.Copy(io.Discard, r)
		if over := n > limit; over != errors.Is(err, image.ErrTooLarge) || got != min(n, limit) {
			t.Errorf("%d bytes of a %d MiB disk: read %d, %v", n, mb, got, err)
		}
	}
	for _, mb := range []uint64{16 << 10, math.MaxUint64} {
		if l := newDiskTarLimit(nil, mb).left; l != image.DefaultMaxBytes {
			t.Errorf("a disk of %d MiB: limit %d, want image.DefaultMaxBytes", mb, l)
		}
	}
}
