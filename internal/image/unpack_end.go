package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// RequireEnd (UnpackOptions): a tar must end with its end-of-archive
// marker, two zero blocks. archive/tar takes a stream that stops at an
// entry's boundary, or after a PAX or GNU long-name header and its data,
// for the end; so the unpacker reads what an entry left of its data
// itself (drainEntry), and then checks that Next read the marker last
// (checkEnd).

// drainEntry reads what the entry last left unread of its data (a
// whiteout's, a skipped one's), so that only its padding and the marker
// come before the next header or the end. archive/tar gives a sparse
// entry's holes as zeros: what is drained counts against MaxBytes as
// written files do (a few bytes on the wire may name a file of exabytes),
// and the context ends it.
func (u *unpacker) drainEntry(tr *tar.Reader, lr *limitReader, last string) error {
	left := u.limits.MaxBytes - u.stats.Bytes - u.drained
	n, err := io.CopyBuffer(io.Discard, io.LimitReader(&fsutil.ContextReader{Ctx: u.ctx, R: tr}, left+1), u.buf)
	u.drained += n
	switch {
	case n > left, lr.over:
		return u.tooLarge(last)
	case err != nil:
		return fmt.Errorf("reading layer: %q: %w", last, err)
	}
	return nil
}

// checkEnd says whether Next's io.EOF, having read from before on, came
// after the marker: the last entry's padding, then at least two zero
// blocks, which must be the last bytes read (archive/tar checks they are
// zeros, but a PAX header's records past 1024 bytes read the same).
func checkEnd(cr *countingReader, before int64, last string) error {
	if cr.n-before >= 2*512 && cr.zeroTail >= 2*512 {
		return nil
	}
	if last == "" {
		return errors.New("reading layer: the stream ended before its first entry, without the end-of-archive marker")
	}
	return fmt.Errorf("reading layer: the stream ended after %q without the end-of-archive marker: the sender stopped half way", last)
}

// countingReader counts the bytes read through it, and how many of the
// last of them are zeros.
type countingReader struct {
	r        io.Reader
	n        int64
	zeroTail int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		c.zeroTail += int64(n)
	} else {
		c.zeroTail = int64(n - i)
	}
	return n, err
}
