package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestCommitBeforeAdd: Parent.BeforeAdd is called with the new layer's
// id before the store has the layer (a network helper marks it private
// then), and its error stops the snapshot with nothing added.
func TestCommitBeforeAdd(t *testing.T) {
	ctx := context.Background()
	s, err := image.Open(filepath.Join(t.TempDir(), "store"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	layerDir := func(content string) string {
		td, err := s.TempDir(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { td.Remove() })
		dir := filepath.Join(td.Path(), "fs")
		os.Mkdir(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644)
		return dir
	}
	parent := Parent{Key: "p", Config: []byte(`{"os":"linux"}`)}
	var seen v1.Hash
	parent.BeforeAdd = func(id v1.Hash) error {
		seen = id
		if s.HasLayer(id) {
			t.Errorf("BeforeAdd(%s): the store has the layer already", id)
		}
		return nil
	}
	info, err := Commit(ctx, s, idmap.Current(), layerDir("one"), parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Layers) != 1 || info.Layers[0] != seen || !s.HasLayer(seen) {
		t.Errorf("snapshot layers %v, BeforeAdd saw %s", info.Layers, seen)
	}
	stop := errors.New("refused")
	parent.BeforeAdd = func(id v1.Hash) error { seen = id; return stop }
	if _, err := Commit(ctx, s, idmap.Current(), layerDir("two"), parent); !errors.Is(err, stop) {
		t.Errorf("a snapshot BeforeAdd refused: %v", err)
	}
	if s.HasLayer(seen) {
		t.Error("the refused snapshot's layer is in the store")
	}
}

// TestHashTreeRoot: a layer's root is "/" where the layer is on top, so
// two layers that differ only in their root's mode are two layers, not
// one id whose content is whichever the store got first.
func TestHashTreeRoot(t *testing.T) {
	ctx := context.Background()
	s, err := image.Open(filepath.Join(t.TempDir(), "store"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	layer := func(mode os.FileMode) v1.Hash {
		td, err := s.TempDir(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { td.Remove() })
		dir := filepath.Join(td.Path(), "fs")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("same"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		id, _, err := HashTree(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		info, err := Commit(ctx, s, idmap.Current(), dir, Parent{Key: "p", Config: []byte(`{"os":"linux"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Layers) != 1 || info.Layers[0] != id {
			t.Fatalf("the snapshot's layers %v; HashTree said %s", info.Layers, id)
		}
		return id
	}
	open, closed := layer(0o755), layer(0o700)
	if open == closed {
		t.Fatalf("layers with roots of mode 0755 and 0700 have one id, %s", open)
	}
	if again := layer(0o755); again != open {
		t.Errorf("one layer made twice: ids %s and %s", open, again)
	}
}
