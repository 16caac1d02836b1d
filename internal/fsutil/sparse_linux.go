package fsutil

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyChunk is the unit CopySparse reads, writes and tests for zeros.
const copyChunk = 64 << 10

// zeros is a chunk of zero bytes, to hash holes with.
var zeros = make([]byte, copyChunk)

// ErrFileTooLarge matches the error of CopySparseContext for a file
// larger than the limit it was given.
var ErrFileTooLarge = errors.New("file larger than the limit")

// CopySparse is CopySparseContext with a context that never ends and no
// size limit.
func CopySparse(in, out *os.File, sum hash.Hash) (int64, error) {
	return CopySparseContext(context.Background(), in, out, sum, -1)
}

// CopySparseContext copies the regular file in to out (nil: only hashes
// it), adds its content to sum (nil: none), and returns how many bytes it
// read. Holes of in (SEEK_HOLE) are not read, and neither they nor chunks
// of zero bytes are written: out gets holes there, so that a sandbox's
// sparse file (a 10 GB one of a single block) takes the store no more
// room than it took the sandbox. The content hashed is the file's bytes,
// zeros included, as a plain copy would have it.
//
// A file whose size is more than limit bytes (limit < 0: none) is not
// read: the error matches ErrFileTooLarge. ctx is checked at every chunk
// (64 KiB read or hashed), so that hashing the holes of a huge sparse
// file stops soon after ctx ends, with ctx's error.
func CopySparseContext(ctx context.Context, in, out *os.File, sum hash.Hash, limit int64) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	if limit >= 0 && st.Size > limit {
		return 0, fmt.Errorf("%w: %d bytes, more than %d", ErrFileTooLarge, st.Size, limit)
	}
	size := st.Size
	buf := make([]byte, copyChunk)
	var pos int64
	for pos < size {
		if err := ctx.Err(); err != nil {
			return pos, err
		}
		data, err := unix.Seek(int(in.Fd()), pos, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			data = size // a hole to the end
		case err != nil:
			data = pos // no SEEK_DATA here: read it all
		}
		if data > size {
			data = size
		}
		if data > pos {
			if err := hashZeros(ctx, sum, data-pos); err != nil {
				return pos, err
			}
			pos = data
			continue
		}
		end, err := unix.Seek(int(in.Fd()), pos, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		for pos < end {
			if err := ctx.Err(); err != nil {
				return pos, err
			}
			n := int(min(int64(len(buf)), end-pos))
			got, err := in.ReadAt(buf[:n], pos)
			if got > 0 {
				if sum != nil {
					sum.Write(buf[:got])
				}
				if out != nil && !AllZero(buf[:got]) {
					if _, err := out.WriteAt(buf[:got], pos); err != nil {
						return pos, err
					}
				}
				pos += int64(got)
			}
			if err == io.EOF {
				size = pos // it shrank as we read (a sandbox that is not frozen)
				break
			}
			if err != nil {
				return pos, fmt.Errorf("reading at %d: %w", pos, err)
			}
		}
	}
	if out != nil {
		if err := out.Truncate(pos); err != nil {
			return pos, err
		}
	}
	return pos, nil
}

// hashZeros adds n zero bytes to sum, a chunk at a time, and returns
// ctx's error when ctx ends first.
func hashZeros(ctx context.Context, sum hash.Hash, n int64) error {
	if sum == nil {
		return nil
	}
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(zeros)))
		sum.Write(zeros[:k])
		n -= k
	}
	return nil
}
