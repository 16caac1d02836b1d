package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// LayerSource is where AddLayer reads a layer from.
type LayerSource struct {
	// DiffID is the sha256 of the layer's uncompressed tar: its id in the
	// store, checked against what is read.
	DiffID v1.Hash
	// Digest, when set, is the sha256 of the bytes Open returns (a
	// compressed blob), checked too.
	Digest v1.Hash
	// Open returns the layer: a gzip or zstd compressed or a plain tar
	// stream, told apart by its first bytes (unless Plain).
	Open func() (io.ReadCloser, error)
	// Plain says the stream is a plain tar, never expanded: compressed
	// bytes are read as they are (and fail the DiffID check).
	Plain bool
	// Unlocked unpacks the stream before taking the layer's lock, which
	// only the commit then holds: for a source that may be slow or stall
	// (a network client), so that others adding the same layer do not
	// wait for it. Concurrent adds of one layer then each unpack theirs,
	// and one commits.
	Unlocked bool
	// BeforeCommit, when set, is called under the layer's lock once the
	// layer is unpacked and checked, just before it appears in the store
	// (not when the store has it already); an error stops the add.
	BeforeCommit func() error
}

// check refuses a source whose digests the store cannot check.
func (src LayerSource) check() error {
	if !validHash(src.DiffID) {
		return fmt.Errorf("layer: bad diffID %q", src.DiffID)
	}
	if src.Digest != (v1.Hash{}) && !validHash(src.Digest) {
		return fmt.Errorf("layer %s: unsupported digest %q", src.DiffID, src.Digest)
	}
	return nil
}

// AddLayer unpacks the layer src into the store unless it is there
// already, and reports whether it added it. The layer is checked against
// src.DiffID (and src.Digest when set) and appears only when complete and
// flushed to disk; concurrent calls for the same layer, in this process or
// others, end with one copy. progress, when not nil, is called with the
// bytes read from src.Open so far. Errors: ErrDigestMismatch, the errors
// of Unpack, or those of reading src; the store is left as it was.
func (s *Store) AddLayer(ctx context.Context, src LayerSource, progress func(done int64)) (added bool, err error) {
	if err := src.check(); err != nil {
		return false, err
	}
	if s.HasLayer(src.DiffID) {
		return false, nil
	}
	// The layer's lock: from the start, or (Unlocked) only to commit.
	lock := func() (bool, func(), error) {
		unlock, err := s.lockLayer(ctx, src.DiffID)
		if err != nil {
			return false, nil, err
		}
		if s.HasLayer(src.DiffID) { // another writer finished it meanwhile
			unlock()
			return true, nil, nil
		}
		return false, unlock, nil
	}
	if !src.Unlocked {
		there, unlock, err := lock()
		if there || err != nil {
			return false, err
		}
		defer unlock()
	}
	td, stats, err := s.unpackTemp(ctx, src, progress)
	if err != nil {
		return false, err
	}
	defer td.Remove()
	if src.Unlocked {
		there, unlock, err := lock()
		if there || err != nil {
			return false, err
		}
		defer unlock()
	}
	if src.BeforeCommit != nil {
		if err := src.BeforeCommit(); err != nil {
			return false, fmt.Errorf("layer %s: %w", src.DiffID, err)
		}
	}
	info := LayerInfo{ID: src.DiffID, Size: stats.Bytes, Entries: stats.Entries, Source: "archive", Mode: s.mode()}
	if err := s.commitLayer(td, info); err != nil {
		return false, fmt.Errorf("layer %s: %w", src.DiffID, err)
	}
	s.log.Debug("layer added", "id", src.DiffID, "bytes", stats.Bytes, "entries", stats.Entries)
	return true, nil
}

// unpackTemp unpacks src, checked, into fs/ of a new TempDir, which it
// returns for the caller to commit or remove (on error it is gone).
func (s *Store) unpackTemp(ctx context.Context, src LayerSource, progress func(int64)) (*TempDir, UnpackStats, error) {
	td, err := s.TempDir(ctx, "layer")
	if err != nil {
		return nil, UnpackStats{}, err
	}
	fsDir := filepath.Join(td.Path(), "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		td.Remove()
		return nil, UnpackStats{}, err
	}
	stats, err := s.unpackFrom(ctx, src, fsDir, progress)
	if err != nil {
		td.Remove()
		return nil, UnpackStats{}, fmt.Errorf("layer %s: %w", src.DiffID, err)
	}
	return td, stats, nil
}

// lockLayer takes the store hold and the layer's own lock.
func (s *Store) lockLayer(ctx context.Context, id v1.Hash) (unlock func(), err error) {
	hold, err := s.shared(ctx)
	if err != nil {
		return nil, fmt.Errorf("locking layer store: %w", err)
	}
	l, err := lockFile(ctx, s.path("locks", id.Hex+".lock"), true)
	if err != nil {
		hold.unlock()
		return nil, fmt.Errorf("locking layer %s: %w", id, err)
	}
	return func() { l.unlock(); hold.unlock() }, nil
}

func (s *Store) mode() string {
	if s.ids.Single() {
		return "single"
	}
	return "mapped"
}

// commitLayer writes layer.json into the temp dir, flushes the filesystem
// and renames the temp dir into place. The caller holds the layer's lock.
func (s *Store) commitLayer(td *TempDir, info LayerInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(td.Path(), "layer.json"), b, 0o600); err != nil {
		return err
	}
	if err := syncFS(td.Path()); err != nil {
		return err
	}
	dst := s.layerPath(info.ID)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(td.Path(), 0o755); err != nil {
		return err
	}
	if err := os.Rename(td.Path(), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// unpackFrom reads src through a pipeline (read and hash the blob,
// decompress, hash the tar) in one goroutine while Unpack writes in this
// one, then checks the digests.
func (s *Store) unpackFrom(ctx context.Context, src LayerSource, dir string, progress func(int64)) (UnpackStats, error) {
	rc, err := src.Open()
	if err != nil {
		return UnpackStats{}, fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	diffHash, blobHash := sha256.New(), sha256.New()
	done := make(chan error, 1)
	go func() {
		err := decompress(&countReader{r: rc, h: blobHash, progress: progress}, pw, diffHash, src.Plain)
		pw.CloseWithError(err)
		done <- err
	}()
	stats, uerr := Unpack(ctx, pr, dir, UnpackOptions{IDs: s.ids, Limits: s.limits, Logger: s.log, Writeback: true})
	pr.CloseWithError(errors.Join(uerr, errors.New("unpack stopped"))) // stops the producer
	perr := <-done
	if uerr != nil {
		return stats, uerr
	}
	if perr != nil {
		return stats, perr
	}
	if src.Digest != (v1.Hash{}) {
		if err := checkHash(blobHash, src.Digest, "blob"); err != nil {
			return stats, err
		}
	}
	return stats, checkHash(diffHash, src.DiffID, "uncompressed layer")
}

func checkHash(h hash.Hash, want v1.Hash, what string) error {
	got := hex.EncodeToString(h.Sum(nil))
	if got != want.Hex {
		return fmt.Errorf("%s is sha256:%s, want %s: %w", what, got, want, ErrDigestMismatch)
	}
	return nil
}

// MaxZstdWindow is the largest window a zstd layer may ask its decoder
// to keep (the decoder's own bound is 512 MB, held for each layer as it
// is read): encoders use 8 MB by default, and zstd --long 128 MB.
const MaxZstdWindow = 128 << 20

// decompress copies the tar stream in r, decompressed (unless plain), into
// w, hashing what it writes, then reads r to its end.
func decompress(r io.Reader, w io.Writer, h hash.Hash, plain bool) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(4)
	var tr io.Reader = br
	switch {
	case plain:
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("reading gzip layer: %w", err)
		}
		defer zr.Close()
		tr = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(MaxZstdWindow))
		if err != nil {
			return fmt.Errorf("reading zstd layer: %w", err)
		}
		defer zr.Close()
		tr = zr
	}
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(io.MultiWriter(w, h), tr, buf); err != nil {
		return fmt.Errorf("reading layer: %w", err)
	}
	if tr != io.Reader(br) {
		if _, err := io.CopyBuffer(io.Discard, br, buf); err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
	}
	return nil
}

// countReader hashes and counts what it reads.
type countReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	progress func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.h.Write(p[:n])
		c.n += int64(n)
		if c.progress != nil {
			c.progress(c.n)
		}
	}
	return n, err
}
