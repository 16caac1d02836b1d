package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestContentID: a layer's content id is the sha256 and length of the tar
// WriteLayerTar writes, the same every time; that tar, added to another
// store under that id, gives the same files; the id is remembered
// beside the layer (read instead of hashing again); a layer the store lacks is an
// error matching fs.ErrNotExist.
func TestContentID(t *testing.T) {
	check(t)
	ctx := context.Background()
	s := openStore(t, Options{})
	raw := makeTar(t, fileE("etc/hello", "hi"), fileE("bin/tool", "#!/bin/sh\n"))
	id := hashOf(raw)
	if _, err := s.AddLayer(ctx, source(raw, id, v1.Hash{}), nil); err != nil {
		t.Fatal(err)
	}
	c, err := s.ContentID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var b1, b2 bytes.Buffer
	if err := s.WriteLayerTar(ctx, &b1, id); err != nil {
		t.Fatal(err)
	}
	s.WriteLayerTar(ctx, &b2, id)
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) || hashOf(b1.Bytes()) != c.DiffID || int64(b1.Len()) != c.Size {
		t.Errorf("ContentID %+v, tars of %d and %d bytes, sha256 %s", c, b1.Len(), b2.Len(), hashOf(b1.Bytes()))
	}
	other := openStore(t, Options{})
	if _, err := other.AddLayer(ctx, source(b1.Bytes(), c.DiffID, v1.Hash{}), nil); err != nil {
		t.Fatalf("the tar in another store: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(other.LayerDir(c.DiffID), "etc/hello")); err != nil || string(b) != "hi" {
		t.Errorf("etc/hello in the other store: %q, %v", b, err)
	}

	// What is remembered is what a second call reads: change it and see.
	marked := LayerContent{DiffID: hashOf([]byte("marker")), Size: 7}
	b, _ := json.Marshal(marked)
	if err := os.WriteFile(filepath.Join(s.layerPath(id), contentFile), b, 0o600); err != nil {
		t.Fatalf("the content id is not remembered beside the layer: %v", err)
	}
	if c2, err := s.ContentID(ctx, id); err != nil || c2 != marked {
		t.Errorf("ContentID after what it remembered changed: %+v, %v", c2, err)
	}
	if _, err := s.ContentID(ctx, hashOf([]byte("no such layer"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ContentID of a missing layer: %v", err)
	}
}
