package ipc

import (
	"io"
	"io/fs"
	"math"
	"os"
	"syscall"
)

// CheckSize refuses (EFBIG) a MsgFsWriteStream whose Size no file can
// hold.
func (m *WriteStreamReq) CheckSize() error {
	if m.Size > math.MaxInt64 {
		return &fs.PathError{Op: "write", Path: m.Path, Err: syscall.EFBIG}
	}
	return nil
}

// ReceiveWriteStream is the serving end of MsgFsWriteStream once the
// success answer is out: copy moves the m.Size bytes that follow on conn
// into f (through Write alone: f is wrapped so that os.File's ReadFrom,
// 32 KiB a system call, is not used). A write that fails half way still
// reads the rest of the stream, so the client never blocks, and never
// waits twice for what was read but not written. It then closes f and
// writes the status frame: the write's or the close's error as a
// *fs.PathError on m.Path, io.ErrUnexpectedEOF when the stream ended
// short, or success. conn stays open.
func ReceiveWriteStream(conn io.ReadWriter, f *os.File, m *WriteStreamReq, copy func(dst io.Writer, src io.Reader) (int64, error)) {
	rest := &io.LimitedReader{R: conn, N: int64(m.Size)}
	n, err := copy(struct{ io.Writer }{f}, rest)
	if err != nil {
		io.Copy(io.Discard, rest)
	} else if n < int64(m.Size) {
		err = io.ErrUnexpectedEOF
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		err = &fs.PathError{Op: "write", Path: m.Path, Err: err}
	}
	WriteStatus(conn, err)
}
