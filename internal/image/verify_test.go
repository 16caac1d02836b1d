package image

import (
	"bytes"
	"context"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestVerifyLayer: a source that serves the layer's bytes, plain or
// gzipped (with its blob digest), verifies; other bytes under its digest,
// a wrong blob digest, or more than the store's size limit do not; and
// nothing is written to the store either way.
func TestVerifyLayer(t *testing.T) {
	check(t)
	ctx := context.Background()
	s := openStore(t, Options{})
	raw := makeTar(t, fileE("etc/hello", "hi"))
	blob := gzipped(t, raw)
	diffID, digest := hashOf(raw), hashOf(blob)
	for _, c := range []struct {
		name string
		src  LayerSource
		want error
	}{
		{"plain", source(raw, diffID, v1.Hash{}), nil},
		{"gzipped", source(blob, diffID, digest), nil},
		{"other bytes", source(makeTar(t, fileE("etc/hello", "ho")), diffID, v1.Hash{}), ErrDigestMismatch},
		{"wrong blob digest", source(blob, diffID, hashOf([]byte("x"))), ErrDigestMismatch},
	} {
		if err := s.VerifyLayer(ctx, c.src); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	small := openStore(t, Options{Limits: Limits{MaxBytes: 1024}})
	big := gzipped(t, bytes.Repeat([]byte{0}, 1<<20))
	if err := small.VerifyLayer(ctx, source(big, hashOf(bytes.Repeat([]byte{0}, 1<<20)), v1.Hash{})); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a gzip stream past the size limit: %v, want ErrTooLarge", err)
	}
	if ids, _ := s.Layers(); len(ids) != 0 {
		t.Errorf("VerifyLayer added layers: %v", ids)
	}
}
