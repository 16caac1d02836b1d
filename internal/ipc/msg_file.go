package ipc

// Bodies of the open-file messages (0x03xx), and of every message that
// names only an object the agent holds by handle: a file (MsgFsOpenFile),
// a command (MsgCmdNew), a listener (MsgNetListen).

// HandleReq names an object the agent holds.
type HandleReq struct {
	Handle uint64
}

// Encode implements Msg.
func (m *HandleReq) Encode(e *Encoder) { e.Uint64(m.Handle) }

// Decode implements Msg.
func (m *HandleReq) Decode(d *Decoder) (err error) {
	m.Handle, err = d.Uint64()
	return err
}

// ReadReq is MsgFileRead's request: read at most Max bytes at the file's
// offset.
type ReadReq struct {
	Handle uint64
	Max    uint32
}

// Encode implements Msg.
func (m *ReadReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Uint32(m.Max)
}

// Decode implements Msg.
func (m *ReadReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.Max, err = d.Uint32()
	return err
}

// ReadAtReq is MsgFileReadAt's request: read at most Max bytes at Off.
type ReadAtReq struct {
	Handle uint64
	Off    int64
	Max    uint32
}

// Encode implements Msg.
func (m *ReadAtReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Int64(m.Off)
	e.Uint32(m.Max)
}

// Decode implements Msg.
func (m *ReadAtReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	if m.Off, err = d.Int64(); err != nil {
		return err
	}
	m.Max, err = d.Uint32()
	return err
}

// WriteReq is MsgFileWrite's request: write Data at the file's offset.
type WriteReq struct {
	Handle uint64
	// Data aliases the decoded bytes; copy what must outlive them.
	Data []byte
}

// Encode implements Msg.
func (m *WriteReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.WriteBytes(m.Data)
}

// Decode implements Msg.
func (m *WriteReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.Data, err = d.BorrowBytes()
	return err
}

// WriteAtReq is MsgFileWriteAt's request: write Data at Off.
type WriteAtReq struct {
	Handle uint64
	Off    int64
	// Data aliases the decoded bytes; copy what must outlive them.
	Data []byte
}

// Encode implements Msg.
func (m *WriteAtReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Int64(m.Off)
	e.WriteBytes(m.Data)
}

// Decode implements Msg.
func (m *WriteAtReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	if m.Off, err = d.Int64(); err != nil {
		return err
	}
	m.Data, err = d.BorrowBytes()
	return err
}

// CountAns is how many bytes a write wrote.
type CountAns struct {
	N uint32
}

// Encode implements Msg.
func (m *CountAns) Encode(e *Encoder) { e.Uint32(m.N) }

// Decode implements Msg.
func (m *CountAns) Decode(d *Decoder) (err error) {
	m.N, err = d.Uint32()
	return err
}

// SeekReq is MsgFileSeek's request, as io.Seeker takes it.
type SeekReq struct {
	Handle uint64
	Off    int64
	Whence int32
}

// Encode implements Msg.
func (m *SeekReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Int64(m.Off)
	e.Int32(m.Whence)
}

// Decode implements Msg.
func (m *SeekReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	if m.Off, err = d.Int64(); err != nil {
		return err
	}
	m.Whence, err = d.Int32()
	return err
}

// SeekAns is the offset a seek reached.
type SeekAns struct {
	Pos int64
}

// Encode implements Msg.
func (m *SeekAns) Encode(e *Encoder) { e.Int64(m.Pos) }

// Decode implements Msg.
func (m *SeekAns) Decode(d *Decoder) (err error) {
	m.Pos, err = d.Int64()
	return err
}

// TruncateReq is MsgFileTruncate's request.
type TruncateReq struct {
	Handle uint64
	Size   int64
}

// Encode implements Msg.
func (m *TruncateReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Int64(m.Size)
}

// Decode implements Msg.
func (m *TruncateReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.Size, err = d.Int64()
	return err
}

// ReadDirReq is MsgFileReadDir's request: at most N entries (N > 0), and
// never more than MaxDirEntries; N <= 0 asks for as many of those that
// remain as one answer holds (none at the end, with no error), so a
// caller that wants them all asks until none come.
type ReadDirReq struct {
	Handle uint64
	N      int32
}

// Encode implements Msg.
func (m *ReadDirReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Int32(m.N)
}

// Decode implements Msg.
func (m *ReadDirReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.N, err = d.Int32()
	return err
}
