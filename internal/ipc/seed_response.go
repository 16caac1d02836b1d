package ipc

// ResponseBuilder helps build response payloads. Call Success first: a
// successful payload starts with the code [ErrCodeOK].
type ResponseBuilder struct {
	enc Encoder
}

// NewResponseBuilder creates a new response builder.
func NewResponseBuilder() *ResponseBuilder {
	return &ResponseBuilder{}
}

// Success marks the response as successful (error code 0).
func (r *ResponseBuilder) Success() *ResponseBuilder {
	r.enc.Uint8(ErrCodeOK)
	return r
}

// Uint8 appends a uint8.
func (r *ResponseBuilder) Uint8(v uint8) *ResponseBuilder {
	r.enc.Uint8(v)
	return r
}

// Uint16 appends a uint16.
func (r *ResponseBuilder) Uint16(v uint16) *ResponseBuilder {
	r.enc.Uint16(v)
	return r
}

// Uint32 appends a uint32.
func (r *ResponseBuilder) Uint32(v uint32) *ResponseBuilder {
	r.enc.Uint32(v)
	return r
}

// Uint64 appends a uint64.
func (r *ResponseBuilder) Uint64(v uint64) *ResponseBuilder {
	r.enc.Uint64(v)
	return r
}

// Int32 appends an int32.
func (r *ResponseBuilder) Int32(v int32) *ResponseBuilder {
	r.enc.Int32(v)
	return r
}

// Int64 appends an int64.
func (r *ResponseBuilder) Int64(v int64) *ResponseBuilder {
	r.enc.Int64(v)
	return r
}

// Bool appends a bool.
func (r *ResponseBuilder) Bool(v bool) *ResponseBuilder {
	r.enc.Bool(v)
	return r
}

// String appends a string.
func (r *ResponseBuilder) String(s string) *ResponseBuilder {
	r.enc.String(s)
	return r
}

// Bytes appends length-prefixed bytes.
func (r *ResponseBuilder) Bytes(b []byte) *ResponseBuilder {
	r.enc.WriteBytes(b)
	return r
}

// StringSlice appends a string slice (extension).
func (r *ResponseBuilder) StringSlice(ss []string) *ResponseBuilder {
	r.enc.StringSlice(ss)
	return r
}

// FileInfo appends file info.
func (r *ResponseBuilder) FileInfo(fi FileInfo) *ResponseBuilder {
	EncodeFileInfo(&r.enc, fi)
	return r
}

// DirEntry appends a directory entry (extension).
func (r *ResponseBuilder) DirEntry(de DirEntry) *ResponseBuilder {
	EncodeDirEntry(&r.enc, de)
	return r
}

// Encoder returns the builder's encoder, for appending structures this
// builder has no method for (extension).
func (r *ResponseBuilder) Encoder() *Encoder {
	return &r.enc
}

// Build returns the encoded response bytes.
func (r *ResponseBuilder) Build() []byte {
	return r.enc.Bytes()
}
