package dockerfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// ADD extracts a local file when its content is a tar archive, plain or
// compressed with gzip, bzip2 or zstd, as Docker decides it: by content,
// never by name. (xz, which Docker also reads, is copied as a file.)

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// openArchive opens the host file p as a tar stream, decompressing it.
// ok is false when p is not a tar archive.
func openArchive(p string) (r io.Reader, closeFn func(), ok bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, false, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(4)
	var rd io.Reader = br
	closeFn = func() { f.Close() }
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			closeFn()
			return nil, nil, false, nil
		}
		rd = zr
	case bytes.HasPrefix(head, magicBzip2):
		rd = bzip2.NewReader(br)
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(image.MaxZstdWindow))
		if err != nil {
			closeFn()
			return nil, nil, false, nil
		}
		closeFn = func() { zr.Close(); f.Close() }
		rd = zr
	}
	// A tar archive is what archive/tar reads a first header from.
	pr := bufio.NewReaderSize(rd, 64<<10)
	block, err := pr.Peek(512)
	if err != nil || !isTarHeader(block) {
		closeFn()
		return nil, nil, false, nil
	}
	return pr, closeFn, true, nil
}

// isTarHeader reports whether block is a tar header archive/tar accepts.
func isTarHeader(block []byte) bool {
	_, err := tar.NewReader(bytes.NewReader(block)).Next()
	return err == nil
}

// extract unpacks the archive r into the directory rel of the layer,
// merging with what is there already. tmp is an empty directory on the
// layer's filesystem to unpack into first.
func (w *layerWriter) extract(ctx context.Context, r io.Reader, rel, tmp string, meta dirMeta) error {
	if err := w.mkdirAll(rel, meta); err != nil {
		return err
	}
	if _, err := image.Unpack(ctx, r, tmp, image.UnpackOptions{IDs: w.ids}); err != nil {
		return fmt.Errorf("extracting the archive: %w", err)
	}
	return w.merge(tmp, rel)
}

// merge moves the entries of the host directory src into the layer's
// directory rel: a directory merges with one of the same name, anything
// else replaces what is there.
func (w *layerWriter) merge(src, rel string) error {
	names, err := readNames(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		s := filepath.Join(src, n)
		child := joinRel(rel, n)
		sfi, err := os.Lstat(s)
		if err != nil {
			return err
		}
		dfi, derr := w.layer.Lstat(name(child))
		if derr == nil && sfi.IsDir() && dfi.IsDir() {
			if err := w.merge(s, child); err != nil {
				return err
			}
			if _, mine := w.dirs[child]; mine {
				// The archive's metadata wins over the made directory's.
				var st unix.Stat_t
				if err := unix.Lstat(s, &st); err != nil {
					return err
				}
				uid, gid := ownerOf(w.ids, s, &st)
				w.dirs[child] = dirMeta{mode: fsutil.FileMode(st.Mode), uid: uid, gid: gid, mtime: timeOf(st.Mtim)}
			}
			continue
		}
		if err := w.clear(child, false); err != nil {
			return err
		}
		if err := w.renameIn(s, child); err != nil {
			return err
		}
	}
	return nil
}

// renameIn moves the host entry src (the builder's own) to rel in the
// layer, through rel's directory's descriptor.
func (w *layerWriter) renameIn(src, rel string) error {
	dir, base, err := w.parent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := unix.Renameat(unix.AT_FDCWD, src, int(dir.Fd()), base); err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: "/" + rel, Err: err}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
