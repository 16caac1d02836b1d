package image

import (
	"bytes"
	"context"
	"errors"
	"io"
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

// TestAddLayerUnlockedPlain: an Unlocked source that stalls half way
// holds nothing another add of the same layer waits for: that one commits,
// and the stalled one, once it goes on, finds the layer there and leaves
// nothing behind. A Plain source is never expanded: gzipped bytes under
// the diffID of what they expand to are refused.
func TestAddLayerUnlockedPlain(t *testing.T) {
	check(t)
	ctx := context.Background()
	s := openStore(t, Options{})
	raw := makeTar(t, fileE("etc/hello", "hi"))
	diffID := hashOf(raw)
	pr, pw := io.Pipe()
	stalled := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		src := LayerSource{DiffID: diffID, Unlocked: true, Plain: true, Open: func() (io.ReadCloser, error) { return pr, nil }}
		added, err := s.AddLayer(ctx, src, nil)
		if err == nil && added {
			err = errors.New("the stalled add committed")
		}
		first <- err
	}()
	go func() {
		pw.Write(raw[:100])
		close(stalled)
	}()
	<-stalled
	if added, err := s.AddLayer(ctx, LayerSource{DiffID: diffID, Unlocked: true, Plain: true, Open: source(raw, diffID, v1.Hash{}).Open}, nil); err != nil || !added {
		t.Fatalf("an add beside a stalled one: %v, %v", added, err)
	}
	pw.Write(raw[100:])
	pw.Close()
	if err := <-first; err != nil {
		t.Errorf("the stalled add, gone on: %v", err)
	}
	if e := tmpEntries(t, s); len(e) != 0 {
		t.Errorf("tmp/ holds %v", e)
	}

	bomb := makeTar(t, fileE("big", string(bytes.Repeat([]byte{1}, 1<<16))))
	if _, err := s.AddLayer(ctx, LayerSource{DiffID: hashOf(bomb), Plain: true, Open: source(gzipped(t, bomb), hashOf(bomb), v1.Hash{}).Open}, nil); err == nil {
		t.Error("a gzip stream added as a plain layer")
	}
}
