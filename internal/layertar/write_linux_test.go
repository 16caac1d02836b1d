package layertar

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
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
