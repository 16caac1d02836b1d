package image

import (
	"io"
	"log/slog"

	"github.com/ccsandbox/sandbox/internal/idmap"
)

// Default limits of one layer.
const (
	// DefaultMaxBytes is the largest uncompressed tar stream of one layer
	// that Unpack accepts: 32 GiB. A compressed layer that expands beyond
	// it (a gzip bomb) fails with ErrTooLarge once that many bytes have
	// been read, having written at most that much.
	DefaultMaxBytes int64 = 32 << 30
	// DefaultMaxEntries is the largest number of entries in one layer.
	DefaultMaxEntries = 4 << 20
	// DefaultMaxNameBytes is the most bytes of names unpacking one layer
	// keeps (see Limits.MaxNameBytes).
	DefaultMaxNameBytes int64 = 256 << 20
)

// Limits bound what Unpack accepts from one layer. Zero fields take the
// defaults.
type Limits struct {
	MaxBytes   int64 // uncompressed tar bytes, trailing padding included
	MaxEntries int   // archive entries
	// MaxNameBytes bounds the bytes of the names unpacking keeps until the
	// layer is done: every entry's, and the parents they imply (MaxEntries
	// names of 4 KB would hold tens of GB). A real layer of a million files
	// keeps some 100 MB.
	MaxNameBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = DefaultMaxNameBytes
	}
	return l
}

// UnpackOptions configure Unpack.
type UnpackOptions struct {
	// IDs maps container ids to host ids; see the package doc on ownership.
	IDs idmap.Map
	// Limits bound the layer; zero fields take the defaults.
	Limits Limits
	// Logger receives what is skipped or lost; nil discards it.
	Logger *slog.Logger
	// Writeback starts writing each regular file to disk as soon as it
	// is complete (sync_file_range), so that a sync after Unpack has
	// little left to wait for.
	Writeback bool
	// RequireEnd refuses a tar that ends without its end-of-archive
	// marker (two zero blocks). archive/tar takes a stream that stops at
	// an entry's boundary for the end; a tar a sandbox's agent sends (a
	// snapshot) stops there when the agent fails half way or dies, and
	// would be taken whole, missing every entry after.
	RequireEnd bool
}

// UnpackStats tell what Unpack did.
type UnpackStats struct {
	Entries int   // archive entries read
	Bytes   int64 // bytes of regular file data written
	Skipped int   // entries left out: device nodes, sockets, AUFS metadata
	Lost    int   // xattrs or owners the filesystem or the user could not keep
}

// limitReader reads at most left bytes from r and fails with ErrTooLarge
// beyond that.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.over {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n - 1, ErrTooLarge
	}
	return n, err
}
