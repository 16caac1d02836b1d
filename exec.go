package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Cmd is a command to run inside a sandbox, shaped like exec.Cmd: build it
// with Instance.Command, CommandContext or EntrypointCommand, set its
// fields, then Run, Start and Wait, Output or CombinedOutput. A Cmd cannot
// be reused after Start.
//
// The standard streams are real descriptors where the sandbox's connection
// carries them: an *os.File given as Stdin, Stdout or Stderr is used by the
// process directly, and other readers and writers are copied through pipes,
// as exec.Cmd does. Otherwise the streams travel over the connection.
type Cmd struct {
	// Path is the command to run: a path inside the sandbox, or a name
	// looked up in the PATH of the command's environment when Start runs.
	Path string

	// Args holds the command line, Args[0] included (usually Path).
	Args []string

	// Env is the environment of the process, KEY=value. If Env is nil, the
	// process gets the image's environment with New's WithEnv applied,
	// plus PWD=Dir when Dir is set. Of duplicate keys the last wins.
	Env []string

	// Dir is the working directory inside the sandbox. If Dir is empty,
	// the process starts in the image's WorkingDir (or WithWorkDir), or /.
	Dir string

	// User is who the process runs as: a name from the sandbox's
	// /etc/passwd, a uid, or user:group. If empty, the image's User (or
	// WithUser) applies, else root.
	User string

	// Stdin is the process's standard input. If nil, it reads from the
	// null device. An *os.File is handed to the process itself; another
	// reader is copied into a pipe by a goroutine, and Wait waits for the
	// copy to end (see exec.Cmd.Stdin).
	Stdin io.Reader

	// Stdout and Stderr are the process's standard output and error. If
	// nil, output goes to the null device. An *os.File is handed to the
	// process itself; another writer receives the output through a pipe
	// and a goroutine. If both are the same writer, at most one goroutine
	// writes at a time.
	Stdout io.Writer
	Stderr io.Writer

	// Tty runs the process on a new pseudo-terminal: its standard streams
	// are the terminal, whose input comes from Stdin and whose output
	// (standard error included) goes to Stdout. See SetConsoleSize.
	Tty bool

	// Cancel is called when the context of CommandContext ends before the
	// process does. If nil, the process and everything it started are
	// killed. See exec.Cmd.Cancel for how its result affects Wait.
	Cancel func() error

	// WaitDelay bounds the time Wait waits, after the context ends or the
	// process exits, for the process to exit and its I/O pipes to close,
	// as exec.Cmd.WaitDelay does; Wait then returns ErrWaitDelay
	// (exec.ErrWaitDelay) if only the pipes held it.
	WaitDelay time.Duration

	// Process is the started process, after Start.
	Process *Process

	// ProcessState describes the exited process, after Wait.
	ProcessState *ProcessState

	// Err holds an error from building the command (for example an
	// Instance that is nil); Start returns it.
	Err error

	inst   *Instance
	ctx    context.Context
	handle uint64 // the agent's handle, after Start

	startCalled   atomic.Bool
	released      atomic.Bool // the agent's handle is freed (after Wait)
	oomBefore     int         // the sandbox's OOM kills at Start, under a memory limit
	rows, cols    uint16
	childIOFiles  []*os.File  // host ends handed to the process, closed after Start
	parentIOPipes []io.Closer // our ends of the pipes, closed after Wait
	goroutine     []func() error
	goroutineErr  <-chan error
	ctxResult     <-chan ctxResult
	ptyMaster     *os.File // the pty, on the descriptor path
	streams       []stream // streams to attach after start, on the streamed path
	waitDone      chan struct{}
}

// ErrWaitDelay is returned by Wait when the process exited but its I/O
// pipes were closed after WaitDelay (the same value as exec.ErrWaitDelay).
var ErrWaitDelay = exec.ErrWaitDelay

// ctxResult is what the context watcher reports to Wait.
type ctxResult struct {
	err   error
	timer *time.Timer
}

// stream is one of the command's standard streams on the streamed path:
// attach connects it once the process has started.
type stream struct {
	num    uint8
	attach func(conn net.Conn)
}

// Command returns a Cmd that runs name with args inside the sandbox.
func (i *Instance) Command(name string, args ...string) *Cmd {
	c := &Cmd{Path: name, Args: append([]string{name}, args...), inst: i}
	if i == nil {
		c.Err = errors.New("sandbox: Command on a nil Instance")
	}
	return c
}

// CommandContext is Command with a context: when ctx ends before the
// process, Cancel runs (by default killing the process and its
// descendants).
func (i *Instance) CommandContext(ctx context.Context, name string, args ...string) *Cmd {
	if ctx == nil {
		panic("sandbox: nil Context")
	}
	c := i.Command(name, args...)
	c.ctx = ctx
	c.Cancel = func() error { return c.kill(syscall.SIGKILL, true) }
	return c
}

// EntrypointCommand returns a Cmd that runs the image's Entrypoint with
// args, or with the image's Cmd when no args are given, as `docker run
// image args...` does. Its Env, Dir and User come from the image and New's
// options.
func (i *Instance) EntrypointCommand(args ...string) *Cmd {
	argv := append([]string(nil), i.defaults.Entrypoint...)
	if len(args) > 0 {
		argv = append(argv, args...)
	} else {
		argv = append(argv, i.defaults.Cmd...)
	}
	if len(argv) == 0 {
		c := &Cmd{inst: i}
		c.Err = errors.New("sandbox: the image has neither Entrypoint nor Cmd, and no arguments were given")
		return c
	}
	return i.Command(argv[0], argv[1:]...)
}

// String returns the command line, for logs.
func (c *Cmd) String() string {
	b := new(strings.Builder)
	b.WriteString(c.Path)
	for _, a := range c.Args[min(1, len(c.Args)):] {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return b.String()
}

// SetConsoleSize sets the size of the command's terminal (Tty): before
// Start it sets the initial size, after Start it resizes the terminal.
func (c *Cmd) SetConsoleSize(rows, cols uint16) error {
	if !c.Tty {
		return errors.New("sandbox: SetConsoleSize on a command without Tty")
	}
	if c.Process == nil {
		c.rows, c.cols = rows, cols
		return nil
	}
	if c.ptyMaster != nil {
		return setWinsize(c.ptyMaster, rows, cols)
	}
	var e ipc.Encoder
	e.Uint64(c.handle)
	e.Uint16(rows)
	e.Uint16(cols)
	_, err := c.inst.client.CallContext(context.Background(), ipc.MsgCmdSetConsoleSize, e.Bytes())
	return err
}

// environ returns the environment of the process, as exec.Cmd computes it.
func (c *Cmd) environ() ([]string, error) {
	env := c.Env
	if env == nil {
		env = append([]string(nil), c.inst.defaults.Env...)
		if c.Dir != "" {
			env = append(env, "PWD="+c.Dir)
		}
	}
	return dedupEnv(env)
}

// dedupEnv removes duplicate keys (the last wins, in the position of its
// last occurrence) and refuses NUL bytes, as exec.Cmd does.
func dedupEnv(env []string) ([]string, error) {
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env))
	for j := len(env) - 1; j >= 0; j-- {
		kv := env[j]
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, errors.New("exec: environment variable contains NUL")
		}
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			k = kv // keep malformed entries, as exec does
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, kv)
	}
	for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
		out[a], out[b] = out[b], out[a]
	}
	return out, nil
}

// Start starts the command but does not wait for it to complete. After a
// successful Start, call Wait to release the command's resources. A name
// not found in PATH gives an *exec.Error wrapping exec.ErrNotFound.
func (c *Cmd) Start() error {
	return c.start(false)
}

// start starts the command. With atOnce (see Run) it also waits for the
// exit, in one exchange with the agent, and sets ProcessState.
func (c *Cmd) start(atOnce bool) error {
	if c.startCalled.Swap(true) {
		return errors.New("exec: already started")
	}
	started := false
	defer func() {
		closeFiles(c.childIOFiles)
		c.childIOFiles = nil
		if !started {
			closeAll(c.parentIOPipes)
			c.parentIOPipes = nil
			c.goroutine = nil
		}
	}()
	if c.Err != nil {
		return c.Err
	}
	if c.Path == "" {
		return errors.New("exec: no command")
	}
	if c.Cancel != nil && c.ctx == nil {
		return errors.New("exec: command with a non-nil Cancel was not created with CommandContext")
	}
	if c.ctx != nil {
		select {
		case <-c.ctx.Done():
			return c.ctx.Err()
		default:
		}
	}
	if err := c.inst.alive(); err != nil {
		return err
	}
	env, err := c.environ()
	if err != nil {
		return err
	}
	spec := ipc.CmdSpec{
		Path: c.Path, Args: c.Args, Env: env, Dir: c.Dir, User: c.User,
		Pty: c.Tty, Rows: c.rows, Cols: c.cols, WantFD: c.inst.fdOK,
	}
	if spec.Dir == "" {
		spec.Dir = c.inst.defaults.WorkingDir
	}
	if spec.User == "" {
		spec.User = c.inst.defaults.User
	}
	if len(spec.Args) == 0 {
		spec.Args = []string{c.Path}
	}
	var files []*os.File
	if c.inst.fdOK {
		files, err = c.stdioFiles(&spec)
	} else {
		err = c.stdioStreams(&spec)
	}
	if err != nil {
		return err
	}

	var e ipc.Encoder
	ipc.EncodeCmdSpec(&e, spec)
	if c.inst.opts.memoryMB > 0 {
		c.oomBefore = c.inst.eng.OOMKills()
	}
	if atOnce {
		started = true
		return c.runExchange(e.Bytes(), files)
	}
	resp, err := c.inst.client.Exchange(context.Background(), ipc.Message{Type: ipc.MsgCmdSpawn, Payload: e.Bytes(), Files: files})
	if err != nil {
		return c.startErr(err)
	}
	dec := ipc.NewDecoder(resp.Payload[1:])
	h, err := dec.Uint64()
	pid, err2 := dec.Int32()
	if err != nil || err2 != nil {
		closeFiles(resp.Files)
		return errors.New("sandbox: malformed answer to a command start")
	}
	c.handle = h
	started = true
	c.Process = &Process{Pid: int(pid), cmd: c}
	if c.Tty && len(resp.Files) == 1 {
		c.ptyMaster = resp.Files[0]
		c.ptyCopies()
	} else {
		closeFiles(resp.Files)
	}
	closeFiles(c.childIOFiles) // the process holds them now
	c.childIOFiles = nil
	for _, s := range c.streams {
		if err := c.attach(s); err != nil {
			c.kill(syscall.SIGKILL, true)
			c.goroutine = append(c.goroutine, func() error { return err })
			break
		}
	}
	c.startGoroutines()
	if (c.Cancel != nil || c.WaitDelay != 0) && c.ctx != nil && c.ctx.Done() != nil {
		resultc := make(chan ctxResult)
		c.ctxResult = resultc
		c.waitDone = make(chan struct{})
		go c.watchCtx(resultc)
	}
	return nil
}

// startErr turns a failed start into the error exec.Cmd would return.
func (c *Cmd) startErr(err error) error {
	var ie *ipc.IPCError
	if errors.As(err, &ie) {
		if ie.Code == ipc.ErrCodeExecNotFound {
			return &exec.Error{Name: c.Path, Err: exec.ErrNotFound}
		}
		if ie.Op != "" && ie.Path != "" {
			return &os.PathError{Op: ie.Op, Path: ie.Path, Err: ie.Bare()}
		}
		return ie
	}
	if aerr := c.inst.stoppedErr(err); aerr != nil {
		return aerr
	}
	return err
}

// stdioFiles chooses the descriptors of the process's streams (the
// descriptor path) and returns the files to send with MsgCmdNew.
func (c *Cmd) stdioFiles(spec *ipc.CmdSpec) ([]*os.File, error) {
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
	if c.Tty {
		for i := range spec.Stdio {
			spec.Stdio[i] = ipc.StdioSpec{Mode: ipc.StdioPty}
		}
		return nil, nil
	}
	in, err := c.childStdin()
	if err != nil {
		return nil, err
	}
	out, err := c.writerDescriptor(c.Stdout)
	if err != nil {
		return nil, err
	}
	errf := out
	if c.Stderr == nil || !interfaceEqual(c.Stderr, c.Stdout) {
		if errf, err = c.writerDescriptor(c.Stderr); err != nil {
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
func (c *Cmd) childStdin() (*os.File, error) {
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
	c.childIOFiles = append(c.childIOFiles, pr)
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
func (c *Cmd) writerDescriptor(w io.Writer) (*os.File, error) {
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
	c.childIOFiles = append(c.childIOFiles, pw)
	c.parentIOPipes = append(c.parentIOPipes, pr)
	c.goroutine = append(c.goroutine, func() error {
		_, err := io.Copy(w, pr)
		pr.Close() // in case io.Copy stopped due to a write error
		return err
	})
	return pw, nil
}

// ptyCopies copies between Stdin, Stdout and the terminal.
func (c *Cmd) ptyCopies() {
	m := c.ptyMaster
	c.parentIOPipes = append(c.parentIOPipes, m)
	if c.Stdin != nil {
		go io.Copy(m, c.Stdin) // like a terminal's keyboard: never waited for
	}
	w := c.Stdout
	if w == nil {
		w = io.Discard
	}
	c.goroutine = append(c.goroutine, func() error {
		_, err := io.Copy(w, m)
		if errors.Is(err, syscall.EIO) {
			err = nil // the terminal's other side closed: end of output
		}
		return err
	})
}

// stdioStreams sets up the process's streams on the streamed path: pipes
// inside the sandbox, joined to connections once the process starts.
func (c *Cmd) stdioStreams(spec *ipc.CmdSpec) error {
	if c.Tty {
		for i := range spec.Stdio {
			spec.Stdio[i] = ipc.StdioSpec{Mode: ipc.StdioPty}
		}
		w := c.Stdout
		if w == nil {
			w = io.Discard
		}
		c.streams = append(c.streams, stream{num: ipc.StreamPty, attach: func(conn net.Conn) {
			c.parentIOPipes = append(c.parentIOPipes, conn)
			if c.Stdin != nil {
				go func() { io.Copy(conn, c.Stdin) }()
			}
			c.goroutine = append(c.goroutine, func() error {
				_, err := io.Copy(w, conn)
				return ignoreClosed(err)
			})
		}})
		return nil
	}
	if r := c.Stdin; r != nil {
		spec.Stdio[0] = ipc.StdioSpec{Mode: ipc.StdioStream}
		if p, ok := r.(*pendingPipe); ok {
			c.streams = append(c.streams, stream{num: ipc.StreamStdin, attach: p.connect})
		} else {
			c.streams = append(c.streams, stream{num: ipc.StreamStdin, attach: func(conn net.Conn) {
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
			c.streams = append(c.streams, stream{num: num, attach: p.connect})
			continue
		}
		c.streams = append(c.streams, stream{num: num, attach: func(conn net.Conn) {
			c.parentIOPipes = append(c.parentIOPipes, conn)
			c.goroutine = append(c.goroutine, func() error {
				_, err := io.Copy(w, conn)
				conn.Close()
				return ignoreClosed(err)
			})
		}})
	}
	return nil
}

// attach opens the connection of one stream.
func (c *Cmd) attach(s stream) error {
	var e ipc.Encoder
	e.Uint64(c.handle)
	e.Uint8(s.num)
	_, conn, err := c.inst.client.Hijack(context.Background(), ipc.Message{Type: ipc.MsgCmdAttach, Payload: e.Bytes()})
	if err != nil {
		return fmt.Errorf("attaching stream %d: %w", s.num, err)
	}
	s.attach(conn)
	return nil
}

// startGoroutines starts the copying goroutines, as exec.Cmd does.
func (c *Cmd) startGoroutines() {
	if len(c.goroutine) == 0 {
		return
	}
	goroutineErr := make(chan error, 1)
	c.goroutineErr = goroutineErr
	type status struct {
		running  int
		firstErr error
	}
	statusc := make(chan status, 1)
	statusc <- status{running: len(c.goroutine)}
	for _, fn := range c.goroutine {
		go func(fn func() error) {
			err := fn()
			st := <-statusc
			if st.firstErr == nil {
				st.firstErr = err
			}
			st.running--
			if st.running == 0 {
				goroutineErr <- st.firstErr
			} else {
				statusc <- st
			}
		}(fn)
	}
	c.goroutine = nil
}

// watchCtx runs Cancel when the context ends, and enforces WaitDelay, as
// exec.Cmd does.
func (c *Cmd) watchCtx(resultc chan<- ctxResult) {
	select {
	case resultc <- ctxResult{}:
		return
	case <-c.ctx.Done():
	}
	var err error
	if c.Cancel != nil {
		if interruptErr := c.Cancel(); interruptErr == nil {
			err = c.ctx.Err()
		} else if !errors.Is(interruptErr, os.ErrProcessDone) {
			err = fmt.Errorf("exec: canceling Cmd: %w", interruptErr)
		}
	}
	if c.WaitDelay == 0 {
		resultc <- ctxResult{err: err}
		return
	}
	timer := time.NewTimer(c.WaitDelay)
	select {
	case resultc <- ctxResult{err: err, timer: timer}:
		return
	case <-timer.C:
	}
	killed := false
	if killErr := c.Process.Kill(); killErr == nil {
		killed = true
	} else if !errors.Is(killErr, os.ErrProcessDone) {
		err = fmt.Errorf("exec: killing Cmd: %w", killErr)
	}
	if c.goroutineErr != nil {
		select {
		case goroutineErr := <-c.goroutineErr:
			if err == nil && !killed {
				err = goroutineErr
			}
		default:
			closeAll(c.parentIOPipes)
			<-c.goroutineErr
			if err == nil {
				err = ErrWaitDelay
			}
		}
		c.goroutineErr = nil
	}
	resultc <- ctxResult{err: err}
}

// Wait waits for the command to exit and for its stream copies to finish,
// as exec.Cmd.Wait does. A failed exit gives an *ExitError, which matches
// ErrOutOfMemory (errors.Is) when the kernel killed the command, or a
// child its exit status reports, for the memory limit; a sandbox that
// stops under the command gives an error matching ErrNotRunning (or why it
// stopped).
func (c *Cmd) Wait() error {
	if c.Process == nil {
		return errors.New("exec: not started")
	}
	if c.ProcessState != nil {
		return errors.New("exec: Wait was already called")
	}
	state, err := c.waitProcess()
	return c.finish(state, err)
}

// finish completes Wait once the process's exit is known (state) or
// waiting for it failed (err).
func (c *Cmd) finish(state *ProcessState, err error) error {
	if err == nil && !state.Success() {
		ee := &ExitError{ProcessState: state}
		// Killed, or a shell reporting a child killed (128+9), while the
		// kernel's count of OOM kills in the sandbox went up.
		killed := state.Signal() == syscall.SIGKILL || state.ExitCode() == 128+int(syscall.SIGKILL)
		if killed && c.inst.opts.memoryMB > 0 && c.inst.eng.OOMKills() > c.oomBefore {
			ee.oom = true
		}
		err = ee
	}
	c.ProcessState = state
	if state == nil {
		c.ProcessState = &ProcessState{status: ipc.ExitStatus{Pid: int32(c.Process.Pid), Code: -1}}
	}
	var timer *time.Timer
	if c.ctxResult != nil {
		watch := <-c.ctxResult
		timer = watch.timer
		if err == nil && watch.err != nil {
			err = watch.err
		}
	}
	if goroutineErr := c.awaitGoroutines(timer); err == nil {
		err = goroutineErr
	}
	closeAll(c.parentIOPipes)
	c.parentIOPipes = nil
	return err
}

// waitProcess asks the agent for the process's exit.
func (c *Cmd) waitProcess() (*ProcessState, error) {
	var e ipc.Encoder
	e.Uint64(c.handle)
	e.Uint8(ipc.WaitRelease)
	resp, err := c.inst.client.CallContext(context.Background(), ipc.MsgCmdWait, e.Bytes())
	c.released.Store(true) // the agent forgot the handle, or the sandbox is gone
	if err != nil {
		if aerr := c.inst.stoppedErr(err); aerr != nil {
			return nil, fmt.Errorf("waiting for %s: %w", c.Path, aerr)
		}
		return nil, fmt.Errorf("waiting for %s: %w", c.Path, err)
	}
	st, err := ipc.DecodeExitStatus(ipc.NewDecoder(resp[1:]))
	if err != nil {
		return nil, err
	}
	return &ProcessState{status: st}, nil
}

// awaitGoroutines waits for the copying goroutines, bounded by WaitDelay,
// as exec.Cmd does.
func (c *Cmd) awaitGoroutines(timer *time.Timer) error {
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		c.goroutineErr = nil
	}()
	if c.goroutineErr == nil {
		return nil
	}
	if timer == nil {
		if c.WaitDelay == 0 {
			return <-c.goroutineErr
		}
		select {
		case err := <-c.goroutineErr:
			return err
		default:
		}
		timer = time.NewTimer(c.WaitDelay)
	}
	select {
	case <-timer.C:
		closeAll(c.parentIOPipes)
		<-c.goroutineErr
		return ErrWaitDelay
	case err := <-c.goroutineErr:
		return err
	}
}

// Run starts the command and waits for it to complete.
func (c *Cmd) Run() error {
	if c.runsAtOnce() {
		return c.start(true)
	}
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// runsAtOnce reports whether Run can start the command and wait for it in
// a single exchange with the agent (MsgCmdRun), which answers at the exit:
// on the descriptor path, without a pty (whose master comes with the start)
// or a context that could cancel the run (which needs the process's handle
// to kill it), and without a goroutine feeding stdin, which could block a
// failed start.
func (c *Cmd) runsAtOnce() bool {
	if c.inst == nil || !c.inst.fdOK || c.Tty || (c.ctx != nil && c.ctx.Done() != nil) {
		return false
	}
	if c.Stdin == nil {
		return true
	}
	_, isFile := c.Stdin.(*os.File)
	return isFile
}

// runExchange sends MsgCmdRun with the copying goroutines already running
// (the output pipes fill while the process runs) and finishes as Wait
// does once the agent answers with the exit.
func (c *Cmd) runExchange(payload []byte, files []*os.File) error {
	c.startGoroutines()
	resp, err := c.inst.client.ExchangeWaiting(ipc.Message{Type: ipc.MsgCmdRun, Payload: payload, Files: files})
	closeFiles(c.childIOFiles) // the process holds them, or never will
	c.childIOFiles = nil
	c.released.Store(true) // the agent keeps no handle
	var pid int32
	var st ipc.ExitStatus
	if err != nil {
		err = c.startErr(err)
	} else {
		closeFiles(resp.Files)
		dec := ipc.NewDecoder(resp.Payload[1:])
		pid, err = dec.Int32()
		if err == nil {
			st, err = ipc.DecodeExitStatus(dec)
		}
		if err != nil {
			err = errors.New("sandbox: malformed answer to a command run")
		}
	}
	if err != nil {
		if c.goroutineErr != nil {
			closeAll(c.parentIOPipes)
			<-c.goroutineErr
		}
		c.parentIOPipes = nil
		return err
	}
	c.Process = &Process{Pid: int(pid), cmd: c}
	return c.finish(&ProcessState{status: st}, nil)
}

// Output runs the command and returns its standard output. When Stderr is
// nil, an *ExitError carries the start and end of the standard error.
func (c *Cmd) Output() ([]byte, error) {
	if c.Stdout != nil {
		return nil, errors.New("exec: Stdout already set")
	}
	var stdout bytes.Buffer
	c.Stdout = &stdout
	captureErr := c.Stderr == nil
	if captureErr {
		c.Stderr = &headTail{n: 32 << 10}
	}
	err := c.Run()
	if err != nil && captureErr {
		var ee *ExitError
		if errors.As(err, &ee) {
			ee.Stderr = c.Stderr.(*headTail).Bytes()
		}
	}
	return stdout.Bytes(), err
}

// CombinedOutput runs the command and returns its standard output and
// standard error together.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	if c.Stdout != nil {
		return nil, errors.New("exec: Stdout already set")
	}
	if c.Stderr != nil {
		return nil, errors.New("exec: Stderr already set")
	}
	var b bytes.Buffer
	c.Stdout = &b
	c.Stderr = &b
	err := c.Run()
	return b.Bytes(), err
}

// StdinPipe returns a pipe connected to the command's standard input.
// Wait closes it after the command exits; closing it earlier gives the
// command end of file.
func (c *Cmd) StdinPipe() (io.WriteCloser, error) {
	if c.Stdin != nil {
		return nil, errors.New("exec: Stdin already set")
	}
	if c.Process != nil {
		return nil, errors.New("exec: StdinPipe after process started")
	}
	if c.inst != nil && !c.inst.fdOK {
		p := newPendingPipe(true)
		c.Stdin = p
		c.parentIOPipes = append(c.parentIOPipes, p)
		return p, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c.Stdin = pr
	c.childIOFiles = append(c.childIOFiles, pr)
	wc := &closeOnce{File: pw}
	c.parentIOPipes = append(c.parentIOPipes, wc)
	return wc, nil
}

// StdoutPipe returns a pipe connected to the command's standard output.
// Wait closes it after the command exits, so read everything before
// calling Wait.
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) {
	if c.Stdout != nil {
		return nil, errors.New("exec: Stdout already set")
	}
	if c.Process != nil {
		return nil, errors.New("exec: StdoutPipe after process started")
	}
	r, w, err := c.outputPipe()
	if err != nil {
		return nil, err
	}
	c.Stdout = w
	return r, nil
}

// StderrPipe returns a pipe connected to the command's standard error.
// Wait closes it after the command exits, so read everything before
// calling Wait.
func (c *Cmd) StderrPipe() (io.ReadCloser, error) {
	if c.Stderr != nil {
		return nil, errors.New("exec: Stderr already set")
	}
	if c.Process != nil {
		return nil, errors.New("exec: StderrPipe after process started")
	}
	r, w, err := c.outputPipe()
	if err != nil {
		return nil, err
	}
	c.Stderr = w
	return r, nil
}

// outputPipe returns both ends of an output pipe for the process.
func (c *Cmd) outputPipe() (io.ReadCloser, io.Writer, error) {
	if c.inst != nil && !c.inst.fdOK {
		p := newPendingPipe(false)
		c.parentIOPipes = append(c.parentIOPipes, p)
		return p, p, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	c.childIOFiles = append(c.childIOFiles, pw)
	c.parentIOPipes = append(c.parentIOPipes, pr)
	return pr, pw, nil
}

// closeOnce makes a second Close a no-op returning os.ErrClosed.
type closeOnce struct {
	*os.File
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.File.Close() })
	return c.err
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

func ignoreClosedRead(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return io.EOF
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
