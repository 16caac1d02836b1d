package agent

import (
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// readStream answers MsgFsReadStream: it opens the regular file m names
// (an error then is the call's) and answers its size; after the answer it
// sends that many bytes on the connection, then the status frame, and
// closes the connection. A file that shrank meanwhile is padded with
// zeros to keep the frame, and its status says so; one that grew is sent
// as it was long when opened.
func (a *agent) readStream(req *ipc.Request, m *ipc.PathReq) (ipc.ReadStreamAns, error) {
	f, err := a.root.open(m.Path, os.O_RDONLY, 0)
	if err != nil {
		return ipc.ReadStreamAns{}, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &fs.PathError{Op: "read", Path: m.Path, Err: syscall.EFBIG} // no size to announce
	}
	if err != nil {
		f.Close()
		return ipc.ReadStreamAns{}, err
	}
	size := fi.Size()
	req.HijackWith(func(conn net.Conn) {
		go func() {
			defer conn.Close()
			defer f.Close()
			n, err := io.CopyBuffer(conn, io.LimitReader(f, size), make([]byte, streamChunk))
			if err == nil && n < size {
				if _, err = io.CopyN(conn, zeros{}, size-n); err == nil {
					err = &fs.PathError{Op: "read", Path: m.Path, Err: io.ErrUnexpectedEOF}
				}
			}
			ipc.WriteStatus(conn, err)
		}()
	})
	return ipc.ReadStreamAns{Size: uint64(size)}, nil
}

// streamChunk is how much of a file readStream and writeStream copy
// at a time: a stream write is a frame and a hand-off to the session's
// sender, and a file read or write a system call, so io.Copy's 32 KiB
// cost a gVisor sandbox more in hand-offs and calls than in copying.
const streamChunk = 256 << 10

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
