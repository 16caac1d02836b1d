package ipc

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Decoder reads IPC messages. Every method checks the bytes that remain
// before it reads or allocates, and returns io.ErrUnexpectedEOF (possibly
// wrapped) when the input is too short; a decoder never panics on any input.
type Decoder struct {
	buf []byte
	pos int
}

// NewDecoder creates a new decoder for the given bytes. The decoder does not
// copy buf; the caller must not change it while decoding.
func NewDecoder(buf []byte) *Decoder {
	return &Decoder{buf: buf}
}

// Remaining returns the number of unread bytes.
func (d *Decoder) Remaining() int {
	return len(d.buf) - d.pos
}

// take returns the next n bytes, or io.ErrUnexpectedEOF if fewer remain.
func (d *Decoder) take(n int) ([]byte, error) {
	if n < 0 || n > d.Remaining() {
		return nil, io.ErrUnexpectedEOF
	}
	b := d.buf[d.pos : d.pos+n : d.pos+n]
	d.pos += n
	return b, nil
}

// Uint8 reads a uint8.
func (d *Decoder) Uint8() (uint8, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// Uint16 reads a uint16 (big endian).
func (d *Decoder) Uint16() (uint16, error) {
	b, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

// Uint32 reads a uint32 (big endian).
func (d *Decoder) Uint32() (uint32, error) {
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// Uint64 reads a uint64 (big endian).
func (d *Decoder) Uint64() (uint64, error) {
	b, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

// Int32 reads an int32 (big endian).
func (d *Decoder) Int32() (int32, error) {
	v, err := d.Uint32()
	return int32(v), err
}

// Int64 reads an int64 (big endian).
func (d *Decoder) Int64() (int64, error) {
	v, err := d.Uint64()
	return int64(v), err
}

// Bool reads a bool (1 byte). Any nonzero byte is true.
func (d *Decoder) Bool() (bool, error) {
	v, err := d.Uint8()
	return v != 0, err
}

// lengthPrefixed reads a uint32 length and that many bytes, without copying.
func (d *Decoder) lengthPrefixed() ([]byte, error) {
	n, err := d.Uint32()
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(d.Remaining()) {
		return nil, fmt.Errorf("length %d with %d bytes left: %w", n, d.Remaining(), io.ErrUnexpectedEOF)
	}
	return d.take(int(n))
}

// String reads a length-prefixed string.
func (d *Decoder) String() (string, error) {
	b, err := d.lengthPrefixed()
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Bytes reads a length-prefixed byte slice into a new slice the caller owns.
func (d *Decoder) Bytes() ([]byte, error) {
	b, err := d.lengthPrefixed()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// BorrowBytes reads a length-prefixed byte slice without copying it: the
// result aliases the decoder's buffer and is valid as long as that buffer is.
// It is an extension for bulk data, where [Decoder.Bytes] would copy.
func (d *Decoder) BorrowBytes() ([]byte, error) {
	return d.lengthPrefixed()
}

// count reads a uint32 element count and checks that the remaining bytes can
// hold that many elements of at least minSize bytes each, so that a hostile
// count never makes the caller allocate.
func (d *Decoder) count(minSize int) (int, error) {
	n, err := d.Uint32()
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(minSize) > uint64(d.Remaining()) {
		return 0, fmt.Errorf("count %d with %d bytes left: %w", n, d.Remaining(), io.ErrUnexpectedEOF)
	}
	return int(n), nil
}

// StringSlice reads a string slice.
func (d *Decoder) StringSlice() ([]string, error) {
	n, err := d.count(4)
	if err != nil {
		return nil, err
	}
	ss := make([]string, n)
	for i := range ss {
		if ss[i], err = d.String(); err != nil {
			return nil, err
		}
	}
	return ss, nil
}
