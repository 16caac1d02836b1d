package agent

import (
	"io"
	"io/fs"
	"net"
	"os"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// writeStream answers MsgFsWriteStream: it opens the file as os.WriteFile
// does (an error then is the call's), and after the success answer copies
// the m.Size bytes that follow on the connection into it, then writes the
// status frame and closes the connection. A write that fails half way
// still reads the rest, so the client never blocks, and reports the error
// in the status.
func (a *agent) writeStream(req *ipc.Request, m *ipc.WriteStreamReq) (ipc.Empty, error) {
	if err := m.CheckSize(); err != nil {
		return ipc.Empty{}, err
	}
	f, err := a.root.open(m.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(m.Perm))
	if err != nil {
		return ipc.Empty{}, err
	}
	req.HijackWith(func(conn net.Conn) {
		go func() {
			defer conn.Close()
			ipc.ReceiveWriteStream(conn, f, m, func(dst io.Writer, src io.Reader) (int64, error) {
				return io.CopyBuffer(dst, src, make([]byte, streamChunk))
			})
		}()
	})
	return ipc.Empty{}, nil
}
