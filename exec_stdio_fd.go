package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// stdioFiles passes descriptors: an *os.File given as Stdin, Stdout or
// Stderr is used by the process itself; other readers and writers are
// copied through pipes, as exec.Cmd does; a terminal's master comes back
// with the start.
type stdioFiles struct {
	childIOFiles []*os.File // host ends handed to the process, closed after the start
	ptyMaster    *os.File   // the terminal, with Tty
}

func (s *stdioFiles) prepare(c *Cmd, spec *ipc.CmdSpec) ([]*os.File, error) {
	if c.Tty {
		for i := range spec.Stdio {
			spec.Stdio[i] = ipc.StdioSpec{Mode: ipc.StdioPty}
		}
		return nil, nil
	}
	var files []*os.File
	send := func(f *os.File) int32 {
		for i, g := range files {
			if g == f {
				return int32(i)
			}
		}
		// The process gets the open file description itself: make it
		// blocking, as exec.Cmd does (os.Pipe's are not), or programs
		// reading it would see EAGAIN.
		f.Fd()
		files = append(files, f)
		return int32(len(files) - 1)
	}
	in, err := s.childStdin(c)
	if err != nil {
		return nil, err
	}
	out, err := s.writerDescriptor(c, c.Stdout)
	if err != nil {
		return nil, err
	}
	errf := out
	if c.Stderr == nil || !interfaceEqual(c.Stderr, c.Stdout) {
		if errf, err = s.writerDescriptor(c, c.Stderr); err != nil {
			return nil, err
		}
	}
	for i, f := range []*os.File{in, out, errf} {
		if f == nil {
			spec.Stdio[i] = ipc.StdioSpec{Mode: ipc.StdioNull}
		} else {
			spec.Stdio[i] = ipc.StdioSpec{Mode: ipc.StdioFile, FileIndex: send(f)}
		}
	}
	return files, nil
}

// childStdin returns the descriptor for the process's stdin, or nil for
// the null device.
func (s *stdioFiles) childStdin(c *Cmd) (*os.File, error) {
	if c.Stdin == nil {
		return nil, nil
	}
	if f, ok := c.Stdin.(*os.File); ok {
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.childIOFiles = append(s.childIOFiles, pr)
	c.parentIOPipes = append(c.parentIOPipes, pw)
	c.goroutine = append(c.goroutine, func() error {
		_, err := io.Copy(pw, c.Stdin)
		if skipStdinCopyError(err) {
			err = nil
		}
		if err1 := pw.Close(); err == nil {
			err = err1
		}
		return err
	})
	return pr, nil
}

// writerDescriptor returns the descriptor for an output stream, or nil for
// the null device.
func (s *stdioFiles) writerDescriptor(c *Cmd, w io.Writer) (*os.File, error) {
	if w == nil {
		return nil, nil
	}
	if f, ok := w.(*os.File); ok {
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.childIOFiles = append(s.childIOFiles, pw)
	c.parentIOPipes = append(c.parentIOPipes, pr)
	c.goroutine = append(c.goroutine, func() error {
		_, err := io.Copy(w, pr)
		pr.Close() // in case io.Copy stopped due to a write error
		return err
	})
	return pw, nil
}

// started copies between Stdin, Stdout and the terminal, when there is one.
func (s *stdioFiles) started(c *Cmd, pty *os.File) error {
	if pty == nil {
		return nil
	}
	pty, err := pollable(pty)
	if err != nil {
		return err
	}
	s.ptyMaster = pty
	c.parentIOPipes = append(c.parentIOPipes, pty)
	if c.Stdin != nil {
		go io.Copy(pty, c.Stdin) // like a terminal's keyboard: never waited for
	}
	w := c.Stdout
	if w == nil {
		w = io.Discard
	}
	c.goroutine = append(c.goroutine, func() error {
		_, err := io.Copy(w, pty)
		if errors.Is(err, syscall.EIO) {
			err = nil // the terminal's other side closed: end of output
		}
		return err
	})
	return nil
}

func (s *stdioFiles) closeChild() {
	closeFiles(s.childIOFiles)
	s.childIOFiles = nil
}

func (s *stdioFiles) stdinPipe(c *Cmd) (io.WriteCloser, io.Reader, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	s.childIOFiles = append(s.childIOFiles, pr)
	wc := &closeOnce{File: pw}
	c.parentIOPipes = append(c.parentIOPipes, wc)
	return wc, pr, nil
}

func (s *stdioFiles) outputPipe(c *Cmd) (io.ReadCloser, io.Writer, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	s.childIOFiles = append(s.childIOFiles, pw)
	c.parentIOPipes = append(c.parentIOPipes, pr)
	return pr, pw, nil
}

func (s *stdioFiles) resize(c *Cmd, rows, cols uint16) error {
	if s.ptyMaster == nil { // the agent kept it
		return c.inst.agent.CmdSetConsoleSize(context.Background(), c.handle, rows, cols)
	}
	return setWinsize(s.ptyMaster, rows, cols)
}

// closeOnce makes a second Close a no-op returning the first's result.
type closeOnce struct {
	*os.File
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.File.Close() })
	return c.err
}

// pollable returns f as a file of the runtime's poller, so that its Close
// ends a Read in progress (WaitDelay's closing of a terminal that a
// process left behind holds open), and closes f. A received descriptor is
// blocking: os.NewFile makes a file pollable only when its descriptor is
// non-blocking as it is made.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	cerr := rc.Control(func(fd uintptr) {
		if dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			if err = unix.SetNonblock(dup, true); err != nil {
				unix.Close(dup)
			}
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("the terminal's descriptor: %w", err)
	}
	return os.NewFile(uintptr(dup), f.Name()), nil
}
