package ipc

import "encoding/binary"

// Encoder writes IPC messages. It appends each value to a growing buffer; the
// zero value is ready to use.
type Encoder struct {
	buf []byte
}

// NewEncoder creates a new encoder.
func NewEncoder() *Encoder {
	return &Encoder{buf: make([]byte, 0, 64)}
}

// Reset clears the buffer for reuse.
func (e *Encoder) Reset() {
	e.buf = e.buf[:0]
}

// Bytes returns the encoded bytes. The slice aliases the encoder's buffer
// until the next call that changes it.
func (e *Encoder) Bytes() []byte {
	return e.buf
}

// Uint8 appends a uint8.
func (e *Encoder) Uint8(v uint8) {
	e.buf = append(e.buf, v)
}

// Uint16 appends a uint16 (big endian).
func (e *Encoder) Uint16(v uint16) {
	e.buf = binary.BigEndian.AppendUint16(e.buf, v)
}

// Uint32 appends a uint32 (big endian).
func (e *Encoder) Uint32(v uint32) {
	e.buf = binary.BigEndian.AppendUint32(e.buf, v)
}

// Uint64 appends a uint64 (big endian).
func (e *Encoder) Uint64(v uint64) {
	e.buf = binary.BigEndian.AppendUint64(e.buf, v)
}

// Int32 appends an int32 (big endian).
func (e *Encoder) Int32(v int32) {
	e.Uint32(uint32(v))
}

// Int64 appends an int64 (big endian).
func (e *Encoder) Int64(v int64) {
	e.Uint64(uint64(v))
}

// Bool appends a bool (1 byte).
func (e *Encoder) Bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// String appends a length-prefixed string (4 bytes length + data).
func (e *Encoder) String(s string) {
	e.Uint32(uint32(len(s)))
	e.buf = append(e.buf, s...)
}

// WriteBytes appends a length-prefixed byte slice (4 bytes length + data).
func (e *Encoder) WriteBytes(b []byte) {
	e.Uint32(uint32(len(b)))
	e.buf = append(e.buf, b...)
}

// StringSlice appends a string slice (4 bytes count + strings).
func (e *Encoder) StringSlice(ss []string) {
	e.Uint32(uint32(len(ss)))
	for _, s := range ss {
		e.String(s)
	}
}
