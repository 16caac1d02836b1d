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
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"golang.org/x/sys/unix"
)

// A network client's streamed writes (MsgFsWriteStream), forwarded,
// cross two connections: TLS to the helper, then the agent's socket,
// every byte copied once more through the kernel and the agent. For a
// regular file of the sandbox's overlay root, where the agent passes
// descriptors, the helper serves them itself: the agent opens the file
// (resolving the path in the sandbox, as for its own stream) and hands
// its descriptor over, and the helper copies the client's bytes into it
// in large pieces. The client sees the agent's frames: the same answer,
// the same status. (Streamed reads gained nothing this way, 0.63-0.74x a
// raw TLS copy forwarded against 0.67-0.73x served here, and stay with
// the agent.)
//
// Anything else goes to the agent as before: a pipe or a device may block
// or answer differently per open, and a write to a file of procfs, sysfs,
// a tmpfs or a host directory is checked, in part, against the
// credentials of whoever writes, which for the helper are the host's
// root's. overlayfs makes its writes with the credentials of the sandbox
// that mounted it, whoever calls.

// netStreamPiece is how much of a stream the helper moves at a time: a
// TLS connection hands out one 16 KiB record per Read, and a file written
// 16 KiB at a time costs about twice what it does in large writes. Two
// pieces of 256 KiB, one filling while the other is written, stay in the
// processor's cache between the copy out of the connection and the copy
// into the file: 100 MB written through the helper took 84-91 ms so,
// against 96-99 ms in pieces of 512 KiB and 100 ms in pieces of 1 MiB (2
// vCPU; see BenchmarkRemote/WriteFile100MB).
const netStreamPiece = 256 << 10

// servesStream reports whether the helper may serve message t of inst
// itself (see serveStream).
func servesStream(inst *engine.Instance, t uint16) bool {
	return t == ipc.MsgFsWriteStream && inst.Capabilities().PassesDescriptors
}

// serveStream serves a streamed write of inst (see servesStream) with
// the file's descriptor, or forwards it to the agent when the file is not
// one the helper copies itself. The stream must bring uploadMinBytes in
// every window, or it is ended. ended is called once the stream has
// ended, when the answer turns the connection into it.
func serveStream(req *ipc.Request, inst *engine.Instance, d *ipc.Desc, window time.Duration, ended func()) (*ipc.Response, error) {
	var m ipc.WriteStreamReq
	if err := ipc.DecodeRequest(req.Type, req.Payload, &m); err != nil {
		return nil, err
	}
	if err := m.CheckSize(); err != nil {
		return nil, err
	}
	f, err := openCopied(req.Context(), inst, m.Path, fs.FileMode(m.Perm))
	if f == nil && err == nil {
		return forwardTo(req.Context(), inst, req, d, ended)
	}
	if err != nil {
		return nil, err
	}
	return &ipc.Response{Payload: ipc.Answer(nil), Hijack: func(conn net.Conn) {
		go whileRunning(inst, func() {
			defer ended()
			defer conn.Close()
			paced := &paceReader{conn: conn, window: window, min: uploadMinBytes}
			ipc.ReceiveWriteStream(struct {
				io.Reader
				io.Writer
			}{paced, conn}, f, &m, copyInPieces)
		}, conn, f)
	}}, nil
}

// openCopied opens p for a streamed write in inst's sandbox (created or
// truncated, as os.WriteFile does), through its agent, when it is a file
// the helper copies into itself, and returns nil and no error when the
// agent should serve the call instead: the file is not regular, or not
// on the sandbox's overlay root. It asks the agent first what p is, so
// that a pipe or a device is opened once, by the agent. A file that is no
// longer regular once open (the sandbox swapped it meanwhile) is an
// error.
func openCopied(ctx context.Context, inst *engine.Instance, p string, perm fs.FileMode) (*os.File, error) {
	agent := ipc.NewAgent(inst.Client())
	st, err := agent.Stat(ctx, p)
	switch {
	case err == nil && !st.Info.Mode.IsRegular():
		return nil, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, nil // the agent answers with its own error
	}
	ans, f, err := agent.OpenFile(ctx, ipc.OpenFileReq{Path: p, Flag: int32(os.O_WRONLY | os.O_CREATE | os.O_TRUNC), Perm: perm, WantFD: true})
	if err != nil {
		return nil, agentErr(inst, err)
	}
	if f == nil {
		agent.FileClose(ctx, ans.Handle)
		return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EAGAIN} // a directory now
	}
	regular, overlay := fileKind(f)
	switch {
	case !regular:
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EAGAIN} // changed while opened
	case !overlay:
		f.Close()
		return nil, nil
	}
	return f, nil
}

// fileKind tells, from the host's own look at f, whether it is a regular
// file (S_IFREG: an anonymous inode, which has no type, passes
// fs.FileMode's IsRegular) and whether it lives on an overlayfs.
func fileKind(f *os.File) (regular, overlay bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, false
	}
	rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		var sfs unix.Statfs_t
		regular = unix.Fstat(int(fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
		overlay = unix.Fstatfs(int(fd), &sfs) == nil && sfs.Type == unix.OVERLAYFS_SUPER_MAGIC
	})
	return regular, overlay
}

// whileRunning runs fn, closing held should inst end first, so that fn,
// blocked on any of them, returns.
func whileRunning(inst *engine.Instance, fn func(), held ...io.Closer) {
	finished := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-inst.Done():
			for _, c := range held {
				c.Close()
			}
		case <-finished:
		}
	}()
	fn()
	close(finished)
	<-ended
}

// copyInPieces copies src to dst until src ends, in pieces of
// netStreamPiece bytes, and returns the bytes written and the first error
// (nil at src's end). A goroutine fills the next piece while the last is
// written, so that taking the bytes off the connection (for TLS, opening
// its records) and writing them into the file overlap. It returns once
// that goroutine has, so that src has one reader again.
func copyInPieces(dst io.Writer, src io.Reader) (int64, error) {
	free := make(chan []byte, 2)
	free <- make([]byte, netStreamPiece)
	second := false // made once the first piece is full: a stream that stalls holds one
	full := make(chan piece, 1)
	stop := make(chan struct{})
	go fillPieces(src, free, full, stop)
	var written int64
	end := func(err error) (int64, error) {
		close(stop)
		for range full {
		}
		return written, err
	}
	for p := range full {
		if !second && p.err == nil {
			free <- make([]byte, netStreamPiece)
			second = true
		}
		if p.n > 0 {
			w, err := dst.Write(p.buf[:p.n])
			written += int64(w)
			if err != nil {
				return end(err)
			}
		}
		switch p.err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return end(nil)
		default:
			return end(p.err)
		}
		free <- p.buf
	}
	return written, nil // fillPieces sends a piece with an error before it ends
}

// A piece is what one read of copyInPieces brought: n bytes of buf, and
// the read's error.
type piece struct {
	buf []byte
	n   int
	err error
}

// fillPieces reads src into the buffers free hands it, sending each on
// full, until a read fails (src's end included) or stop closes; it
// closes full as it returns.
func fillPieces(src io.Reader, free <-chan []byte, full chan<- piece, stop <-chan struct{}) {
	defer close(full)
	for {
		var buf []byte
		select {
		case <-stop:
			return
		case buf = <-free:
		}
		select {
		case <-stop:
			return
		default:
		}
		n, err := io.ReadFull(src, buf)
		select {
		case full <- piece{buf, n, err}:
		case <-stop:
			return
		}
		if err != nil {
			return
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
