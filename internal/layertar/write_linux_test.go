package layertar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestWriteFileSwappedForFIFO: an entry stated as a regular file that is a
// FIFO by the time it is opened (a sandbox renamed one in meanwhile) is
// left out at once: its open does not wait for a writer that never comes,
// and nothing of it goes into the layer.
func TestWriteFileSwappedForFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var out bytes.Buffer
	tw := &tarWriter{ctx: context.Background(), tw: tar.NewWriter(&out), buf: make([]byte, 4096)}
	done := make(chan error, 1)
	go func() {
		// What entry stated: a regular file of 5 bytes.
		done <- tw.file(fd, "x", &tar.Header{Name: "x", Mode: 0o644}, 5, func(op string, err error) error {
			return fmt.Errorf("%s x: %w", op, err)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("file on a FIFO: %v, want it left out", err)
		}
		if out.Len() != 0 {
			t.Errorf("%d bytes written for a FIFO stated as a file", out.Len())
		}
	case <-time.After(time.Minute):
		// Unblock the open so that the goroutine ends.
		if w, err := os.OpenFile(filepath.Join(dir, "x"), os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("file still waiting a minute on opening a FIFO")
	}
}

// TestWriteEntryRemovedSinceListed: an entry removed between the listing
// of its directory and its stat (a sandbox's temporary file) is left out
// of the layer, not a failure of the whole write.
func TestWriteEntryRemovedSinceListed(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var out bytes.Buffer
	tw := &tarWriter{ctx: context.Background(), tw: tar.NewWriter(&out), ids: idmap.Current(), links: map[[2]uint64]string{}, buf: make([]byte, 4096)}
	if err := tw.entry(fd, "", "gone"); err != nil {
		t.Fatalf("entry of a name removed since it was listed: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("%d bytes written for an entry that is gone", out.Len())
	}
}
