//go:build linux

package sandbox

import (
	"context"
	"testing"

	"github.com/ccsandbox/sandbox/internal/image/imagetest"
)

// BenchmarkPullIfNotPresent measures Pull of an image the store has
// already, under the default policy: option handling, opening the store,
// reading the reference and image records and checking every layer is
// there. (Target: at most 5 ms.)
func BenchmarkPullIfNotPresent(b *testing.B) {
	reg := imagetest.StartRegistry(b, imagetest.RegistryOptions{})
	ref := reg.Ref("bench/multi:1")
	imagetest.Push(b, reg, ref, imagetest.MultiLayer(b, 1<<20))
	cache := WithCacheDir(b.TempDir())
	ctx := context.Background()
	if _, err := Pull(ctx, ref, cache); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Pull(ctx, ref, cache); err != nil {
			b.Fatal(err)
		}
	}
}
