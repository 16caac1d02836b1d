package agent

import (
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// writeStream answers MsgFsWriteStream: it opens the file as os.WriteFile
// does (an error then is the call's), and after the success answer copies
// the m.Size bytes that follow on the connection into it, then writes the
// status frame and closes the connection. A write that fails half way
// still reads the rest, so the client never blocks, and reports the error
// in the status.
func (a *agent) writeStream(req *ipc.Request, m *ipc.WriteStreamReq) (ipc.Empty, error) {
	if m.Size > math.MaxInt64 {
		return ipc.Empty{}, &fs.PathError{Op: "write", Path: m.Path, Err: syscall.EFBIG}
	}
	f, err := a.root.open(m.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(m.Perm))
	if err != nil {
		return ipc.Empty{}, err
	}
	req.HijackWith(func(conn net.Conn) {
		go func() {
			defer conn.Close()
			// Through Write alone: os.File's ReadFrom would copy 32 KiB at
			// a time, each a write system call (dear in gVisor).
			rest := &io.LimitedReader{R: conn, N: int64(m.Size)}
			n, err := io.CopyBuffer(struct{ io.Writer }{f}, rest, make([]byte, streamChunk))
			if err != nil {
				io.Copy(io.Discard, rest) // what was read but not written is not owed again
			} else if n < int64(m.Size) {
				err = io.ErrUnexpectedEOF
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				err = &fs.PathError{Op: "write", Path: m.Path, Err: err}
			}
			ipc.WriteStatus(conn, err)
		}()
	})
	return ipc.Empty{}, nil
}
