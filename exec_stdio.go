package sandbox

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// stdio is how a command's standard streams reach its process, chosen
// once per Cmd from its Instance: as descriptors passed to the agent with
// the start (stdioFiles, exec_stdio_fd.go), or as streams that the agent's
// pipes and terminal are joined to over connections of their own
// (stdioStreams, exec_stdio_stream.go). Either fills the Cmd's copying
// goroutines and the ends it closes after Wait (parentIOPipes), as
// exec.Cmd does.
type stdio interface {
	// prepare sets the stdio modes of spec for c's Stdin, Stdout, Stderr
	// and Tty, and returns the files to send with the request.
	prepare(c *Cmd, spec *ipc.CmdSpec) ([]*os.File, error)
	// started connects the streams once the process runs; pty is the
	// terminal's master when the agent passed it.
	started(c *Cmd, pty *os.File) error
	// closeChild closes this side's copies of what the process was
	// handed; it is called once the start is over, whether it succeeded.
	closeChild()
	// stdinPipe and outputPipe make the pipes of StdinPipe, StdoutPipe and
	// StderrPipe: the caller's end and what the process is given.
	stdinPipe(c *Cmd) (io.WriteCloser, io.Reader, error)
	outputPipe(c *Cmd) (io.ReadCloser, io.Writer, error)
	// resize sets the size of a started command's terminal.
	resize(c *Cmd, rows, cols uint16) error
}

// stdio returns the Cmd's stdio strategy, choosing it on first use.
func (c *Cmd) stdio() stdio {
	if c.io == nil {
		if c.inst != nil && !c.inst.fdOK {
			c.io = &stdioStreams{}
		} else {
			c.io = &stdioFiles{}
		}
	}
	return c.io
}

// closeWrite half-closes a stream connection, so the other side reads end
// of file.
func closeWrite(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	conn.Close()
}

// ignoreClosed drops the error of a copy ended by closing its connection.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// skipStdinCopyError reports whether an error copying to stdin is one to
// ignore: the process exiting early (EPIPE) or closing its input.
func skipStdinCopyError(err error) bool {
	var pe *os.PathError
	return err != nil && (errors.Is(err, syscall.EPIPE) || errors.As(err, &pe) && pe.Op == "write" && errors.Is(pe.Err, os.ErrClosed) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET))
}

// interfaceEqual reports whether a and b are the same writer, without
// panicking on uncomparable types.
func interfaceEqual(a, b any) bool {
	defer func() { recover() }()
	return a == b
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}
