package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// stdioStreams joins the process's streams to connections (the streamed
// path, where descriptors do not pass): the agent makes pipes, or the
// terminal, inside the sandbox, and each stream the Cmd uses becomes a
// connection of its own once the process has started (MsgCmdAttach).
type stdioStreams struct {
	streams []stream // to attach once the process runs
}

// stream is one of the command's standard streams: attach connects it.
type stream struct {
	num    uint8
	attach func(conn net.Conn)
}

func (s *stdioStreams) prepare(c *Cmd, spec *ipc.CmdSpec) ([]*os.File, error) {
	if c.Tty {
		for i := range spec.Stdio {
			spec.Stdio[i] = ipc.StdioSpec{Mode: ipc.StdioPty}
		}
		w := c.Stdout
		if w == nil {
			w = io.Discard
		}
		s.streams = append(s.streams, stream{num: ipc.StreamPty, attach: func(conn net.Conn) {
			c.parentIOPipes = append(c.parentIOPipes, conn)
			if c.Stdin != nil {
				go func() { io.Copy(conn, c.Stdin) }()
			}
			c.goroutine = append(c.goroutine, func() error {
				_, err := io.Copy(w, conn)
				return ignoreClosed(err)
			})
		}})
		return nil, nil
	}
	if r := c.Stdin; r != nil {
		spec.Stdio[0] = ipc.StdioSpec{Mode: ipc.StdioStream}
		if p, ok := r.(*pendingPipe); ok {
			s.streams = append(s.streams, stream{num: ipc.StreamStdin, attach: p.connect})
		} else {
			s.streams = append(s.streams, stream{num: ipc.StreamStdin, attach: func(conn net.Conn) {
				c.parentIOPipes = append(c.parentIOPipes, conn)
				c.goroutine = append(c.goroutine, func() error {
					_, err := io.Copy(conn, r)
					if skipStdinCopyError(err) {
						err = nil
					}
					closeWrite(conn)
					return ignoreClosed(err)
				})
			}})
		}
	}
	outs := []io.Writer{c.Stdout, c.Stderr}
	if c.Stderr != nil && interfaceEqual(c.Stderr, c.Stdout) {
		// One writer for both: serialise writes, as a shared pipe would.
		lw := &lockedWriter{w: c.Stdout}
		outs = []io.Writer{lw, lw}
	}
	for n, w := range outs {
		if w == nil {
			continue
		}
		num := uint8(n + 1)
		spec.Stdio[num] = ipc.StdioSpec{Mode: ipc.StdioStream}
		if p, ok := w.(*pendingPipe); ok {
			s.streams = append(s.streams, stream{num: num, attach: p.connect})
			continue
		}
		s.streams = append(s.streams, stream{num: num, attach: func(conn net.Conn) {
			c.parentIOPipes = append(c.parentIOPipes, conn)
			c.goroutine = append(c.goroutine, func() error {
				_, err := io.Copy(w, conn)
				conn.Close()
				return ignoreClosed(err)
			})
		}})
	}
	return nil, nil
}

// started opens the connection of each stream.
func (s *stdioStreams) started(c *Cmd, _ *os.File) error {
	for _, st := range s.streams {
		conn, err := c.inst.agent.CmdAttach(context.Background(), c.handle, st.num)
		if err != nil {
			return fmt.Errorf("attaching stream %d: %w", st.num, err)
		}
		st.attach(conn)
	}
	return nil
}

func (s *stdioStreams) closeChild() {}

func (s *stdioStreams) stdinPipe(c *Cmd) (io.WriteCloser, io.Reader, error) {
	p := newPendingPipe(true)
	c.parentIOPipes = append(c.parentIOPipes, p)
	return p, p, nil
}

func (s *stdioStreams) outputPipe(c *Cmd) (io.ReadCloser, io.Writer, error) {
	p := newPendingPipe(false)
	c.parentIOPipes = append(c.parentIOPipes, p)
	return p, p, nil
}

func (s *stdioStreams) resize(c *Cmd, rows, cols uint16) error {
	return c.inst.agent.CmdSetConsoleSize(context.Background(), c.handle, rows, cols)
}

// pendingPipe is a StdinPipe or StdoutPipe end on the streamed path: the
// stream's connection arrives when the process starts.
type pendingPipe struct {
	stdin bool
	ready chan struct{} // closed when conn is set or the pipe is closed
	once  sync.Once
	conn  net.Conn // set before ready closes; nil if closed first
	mu    sync.Mutex
	done  bool // guarded by mu
}

func newPendingPipe(stdin bool) *pendingPipe {
	return &pendingPipe{stdin: stdin, ready: make(chan struct{})}
}

func (p *pendingPipe) connect(conn net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		if p.stdin {
			closeWrite(conn)
		}
		conn.Close()
		return
	}
	p.conn = conn
	p.once.Do(func() { close(p.ready) })
}

func (p *pendingPipe) wait() (net.Conn, error) {
	<-p.ready
	if p.conn == nil {
		return nil, os.ErrClosed
	}
	return p.conn, nil
}

func (p *pendingPipe) Read(b []byte) (int, error) {
	conn, err := p.wait()
	if err != nil {
		return 0, err
	}
	n, err := conn.Read(b)
	return n, ignoreClosedRead(err)
}

func (p *pendingPipe) Write(b []byte) (int, error) {
	conn, err := p.wait()
	if err != nil {
		return 0, err
	}
	return conn.Write(b)
}

func (p *pendingPipe) Close() error {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil
	}
	p.done = true
	p.mu.Unlock()
	p.once.Do(func() { close(p.ready) })
	if p.conn == nil {
		return nil
	}
	if p.stdin {
		closeWrite(p.conn) // the command reads end of file
	}
	return p.conn.Close()
}

// lockedWriter serialises writes from two streams into one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func ignoreClosedRead(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return io.EOF
	}
	return err
}
