package fsutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"os"
	"path/filepath"
	"testing"
)

// sparseFile makes a file of size bytes in a temp dir, holes but for
// data written at off.
func sparseFile(t *testing.T, size, off int64, data []byte) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	return f
}

// cancelingHash is a hash that cancels a context once more than after
// bytes were written to it.
type cancelingHash struct {
	hash.Hash
	after  int64
	n      int64
	cancel context.CancelFunc
}

func (h *cancelingHash) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.n > h.after {
		h.cancel()
	}
	return h.Hash.Write(p)
}

// TestCopySparseContextCancel: a context that ends while the holes of a
// 64 GiB sparse file are hashed stops the copy within a chunk, with the
// context's error, having hashed some 1 MiB, not 64 GiB.
func TestCopySparseContextCancel(t *testing.T) {
	in := sparseFile(t, 64<<30, 32<<30, []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum := &cancelingHash{Hash: sha256.New(), after: 1 << 20, cancel: cancel}
	n, err := CopySparseContext(ctx, in, nil, sum, -1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CopySparseContext: %d bytes, %v; want context.Canceled", n, err)
	}
	if sum.n > 1<<20+2*copyChunk {
		t.Errorf("%d bytes hashed after the context ended at 1 MiB", sum.n)
	}
}

// TestCopySparseContextLimit: a file larger than the limit is refused
// before anything is read or written; one of the limit exactly is not.
func TestCopySparseContextLimit(t *testing.T) {
	in := sparseFile(t, 1<<20+1, 0, []byte("data"))
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sum := sha256.New()
	n, err := CopySparseContext(context.Background(), in, out, sum, 1<<20)
	if !errors.Is(err, ErrFileTooLarge) || n != 0 {
		t.Fatalf("CopySparseContext of 1 MiB + 1 with a limit of 1 MiB: %d, %v; want 0 and ErrFileTooLarge", n, err)
	}
	if fi, _ := out.Stat(); fi.Size() != 0 {
		t.Errorf("%d bytes written past the limit", fi.Size())
	}
	if n, err := CopySparseContext(context.Background(), in, out, sum, 1<<20+1); err != nil || n != 1<<20+1 {
		t.Errorf("CopySparseContext at the limit: %d, %v", n, err)
	}
}

// TestCopySparseHash: the hash of a sparse file is that of its bytes,
// holes read as zeros, and the copy reads back the same.
func TestCopySparseHash(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 5000)
	in := sparseFile(t, 8<<20, 3<<20+17, data)
	plain, err := os.ReadFile(in.Name())
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(plain)
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sum := sha256.New()
	if _, err := CopySparseContext(context.Background(), in, out, sum, -1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sum.Sum(nil), want[:]) {
		t.Errorf("hash %x, want %x", sum.Sum(nil), want)
	}
	got, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("the copy differs from the file")
	}
}
