package helper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// A network client's streamed file calls (MsgFsWriteStream,
// MsgFsReadStream), forwarded, would cross two connections: TLS to the
// helper, then the agent's socket, every byte copied once more through
// the kernel and the agent. Where the agent passes descriptors, the
// helper serves them itself: the agent opens the file (resolving the path
// in the sandbox, as for its own stream) and hands its descriptor over,
// and the helper copies between the client's connection and the file in
// large pieces. The client sees the agent's frames: the same answer, the
// same bytes, the same status.

// netStreamPiece is how much of a stream the helper moves at a time: a
// TLS connection hands out one 16 KiB record per Read, and a file written
// 16 KiB at a time costs about twice what it does in large writes.
const netStreamPiece = 1 << 20

// servesStream reports whether the helper serves message t of inst itself.
func servesStream(inst *engine.Instance, t uint16) bool {
	return (t == ipc.MsgFsWriteStream || t == ipc.MsgFsReadStream) && inst.Capabilities().PassesDescriptors
}

// routeStreams registers the helper's own streamed file calls on s.
func (s *session) routeStreams() {
	ipc.Route(s.own, ipc.MsgFsWriteStream, s.writeStream)
	ipc.Route(s.own, ipc.MsgFsReadStream, s.readStream)
}

// openInSandbox has inst's agent open p and pass its descriptor. A file
// the agent keeps instead (a directory) is closed there: the streams take
// regular files only, and the error says so as the agent's would.
func openInSandbox(ctx context.Context, inst *engine.Instance, p string, flag int, perm fs.FileMode) (*os.File, error) {
	agent := ipc.NewAgent(inst.Client())
	ans, f, err := agent.OpenFile(ctx, ipc.OpenFileReq{Path: p, Flag: int32(flag), Perm: perm, WantFD: true})
	if err != nil {
		return nil, agentErr(inst, err)
	}
	if f == nil {
		agent.FileClose(ctx, ans.Handle)
		return nil, &fs.PathError{Op: "read", Path: p, Err: syscall.EFBIG} // no size to announce
	}
	return f, nil
}

// whileRunning runs fn, closing conn and f should inst end first, so that
// fn, blocked on either, returns.
func whileRunning(inst *engine.Instance, conn net.Conn, f *os.File, fn func()) {
	finished := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-inst.Done():
			conn.Close()
			f.Close()
		case <-finished:
		}
	}()
	fn()
	close(finished)
	<-ended
}

// writeStream serves MsgFsWriteStream as the agent's writeStream does: it
// opens the file as os.WriteFile does (an error then is the call's), and
// after the answer copies the m.Size bytes that follow into it, reading
// the rest after a failed write so the client never blocks, then writes
// the status and closes the connection.
func (s *session) writeStream(req *ipc.Request, m *ipc.WriteStreamReq) (ipc.Empty, error) {
	inst, err := s.engine()
	if err != nil {
		return ipc.Empty{}, err
	}
	f, err := openInSandbox(req.Context(), inst, m.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(m.Perm))
	if err != nil {
		return ipc.Empty{}, err
	}
	req.HijackWith(func(conn net.Conn) {
		go whileRunning(inst, conn, f, func() {
			defer conn.Close()
			n, err := copyInPieces(struct{ io.Writer }{f}, io.LimitReader(conn, int64(m.Size)))
			if err != nil {
				io.Copy(io.Discard, io.LimitReader(conn, int64(m.Size)-n))
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
		})
	})
	return ipc.Empty{}, nil
}

// readStream serves MsgFsReadStream as the agent's readStream does: it
// answers the size of the regular file m names, then sends that many
// bytes (a file that shrank meanwhile padded with zeros, its status
// saying so), then the status, and closes the connection.
func (s *session) readStream(req *ipc.Request, m *ipc.PathReq) (ipc.ReadStreamAns, error) {
	inst, err := s.engine()
	if err != nil {
		return ipc.ReadStreamAns{}, err
	}
	f, err := openInSandbox(req.Context(), inst, m.Path, os.O_RDONLY, 0)
	if err != nil {
		return ipc.ReadStreamAns{}, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &fs.PathError{Op: "read", Path: m.Path, Err: syscall.EFBIG}
	}
	if err != nil {
		f.Close()
		return ipc.ReadStreamAns{}, err
	}
	size := fi.Size()
	req.HijackWith(func(conn net.Conn) {
		go whileRunning(inst, conn, f, func() {
			defer conn.Close()
			defer f.Close()
			n, err := copyInPieces(conn, io.LimitReader(f, size))
			if err == nil && n < size {
				if _, err = copyInPieces(conn, io.LimitReader(zeros{}, size-n)); err == nil {
					err = &fs.PathError{Op: "read", Path: m.Path, Err: io.ErrUnexpectedEOF}
				}
			}
			ipc.WriteStatus(conn, err)
		})
	})
	return ipc.ReadStreamAns{Size: uint64(size)}, nil
}

// copyInPieces copies src to dst until src ends, filling a piece of
// netStreamPiece bytes before each write, and returns the bytes written
// and the first error (nil at src's end).
func copyInPieces(dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, netStreamPiece)
	var written int64
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return written, nil
		default:
			return written, rerr
		}
	}
}

// agentErr is the error of a failed call to inst's agent: the sandbox's
// end, when the connection broke because it ended.
func agentErr(inst *engine.Instance, err error) error {
	if !errors.Is(err, ipc.ErrTransport) {
		return err
	}
	if rerr := inst.Err(); rerr != nil {
		return rerr
	}
	return fmt.Errorf("sandbox %s: %w", inst.ID(), ipc.ErrNotRunning)
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
