package fsutil

import (
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

// CopySparse copies the regular file in to out (nil: only hashes it),
// adds its content to sum (nil: none), and returns how many bytes it read. Holes of
// in (SEEK_HOLE) are not read, and neither they nor chunks of zero bytes
// are written: out gets holes there, so that a sandbox's sparse file (a
// 10 GB one of a single block) takes the store no more room than it took
// the sandbox. The content hashed is the file's bytes, zeros included,
// as a plain copy would have it.
func CopySparse(in, out *os.File, sum hash.Hash) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	size := st.Size
	buf := make([]byte, copyChunk)
	var pos int64
	for pos < size {
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
			hashZeros(sum, data-pos)
			pos = data
			continue
		}
		end, err := unix.Seek(int(in.Fd()), pos, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		for pos < end {
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

// hashZeros adds n zero bytes to sum.
func hashZeros(sum hash.Hash, n int64) {
	if sum == nil {
		return
	}
	for n > 0 {
		k := min(n, int64(len(zeros)))
		sum.Write(zeros[:k])
		n -= k
	}
}
