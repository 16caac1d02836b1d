package layertar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/testutil/linktree"
)

// cancelingWriter counts what is written to it and cancels a context
// once more than after bytes were.
type cancelingWriter struct {
	after  int64
	n      int64
	cancel context.CancelFunc
}

func (w *cancelingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n > w.after {
		w.cancel()
	}
	return len(p), nil
}

// TestWriteCancelInsideFile: a context that ends while the data of a
// 4 GiB sparse file (no disk) is written stops Write within a chunk, with
// the context's error; it used to write the whole file, every zero of
// it, and succeed.
func TestWriteCancelInsideFile(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelingWriter{after: 4 << 20, cancel: cancel}
	err = Write(ctx, w, dir, idmap.Current(), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write: %v after %d bytes; want context.Canceled", err, w.n)
	}
	if w.n > 8<<20 {
		t.Errorf("Write wrote %d bytes after the context ended at 4 MiB", w.n)
	}
}

// TestWriteLinkLimit: the names kept to write hard links are counted
// against the limit, and a layer past it fails with ErrTooManyLinks and a
// short error; under it, the links are written as links.
func TestWriteLinkLimit(t *testing.T) {
	dir := t.TempDir()
	linktree.Pairs(t, dir, 50)
	// Each first link costs len("fNN") + LinkCost: 20 of them fit.
	err := write(context.Background(), io.Discard, dir, idmap.Current(), nil, 20*(3+LinkCost))
	if !errors.Is(err, ErrTooManyLinks) {
		t.Fatalf("write past the limit: %v; want ErrTooManyLinks", err)
	}
	if len(err.Error()) > 300 {
		t.Errorf("a %d-byte error: %.300s", len(err.Error()), err)
	}
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, dir, idmap.Current(), nil); err != nil {
		t.Fatal(err)
	}
	links := 0
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeLink {
			links++
		}
	}
	if links != 50 {
		t.Errorf("%d hard links written, want 50", links)
	}
}
