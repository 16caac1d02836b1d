package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
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
// as exec.Cmd does. Otherwise the streams travel over the connection (see
// exec_stdio.go).
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
	// process does. If nil, the process, its process group and every
	// process it started that is still its descendant are killed. A
	// process that has left both (one that called setsid and whose parent
	// has exited, as a daemon does) is not: the sandbox cannot tell whose
	// it is, and Close of the sandbox ends it. It may hold the command's
	// output open, so set WaitDelay to bound Wait. See exec.Cmd.Cancel
	// for how Cancel's result affects Wait.
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
	io     stdio  // how the streams reach the process (see Cmd.stdio)

	startCalled   atomic.Bool
	released      atomic.Bool // the agent's handle is freed (after Wait)
	oomBefore     int         // the sandbox's OOM kills at Start, under a memory limit
	rows, cols    uint16
	parentIOPipes []io.Closer // our ends of the pipes, closed after Wait
	goroutine     []func() error
	goroutineErr  <-chan error
	ctxResult     <-chan ctxResult
	agentCtx      context.Context // the context of the calls that wait on the agent (see bindAgentCalls)
	unbind        func()          // releases agentCtx, once Wait is done
}

// ErrWaitDelay is returned by Wait when the process exited but its I/O
// pipes were closed after WaitDelay (the same value as exec.ErrWaitDelay).
var ErrWaitDelay = exec.ErrWaitDelay

// ctxResult is what the context watcher reports to Wait.
type ctxResult struct {
	err   error
	timer *time.Timer
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
	return c.stdio().resize(c, rows, cols)
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
		if c.io != nil {
			c.io.closeChild()
		}
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
	spec := &ipc.CmdSpec{
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
	st := c.stdio()
	files, err := st.prepare(c, spec)
	if err != nil {
		return err
	}
	if c.inst.opts.memoryMB > 0 {
		c.oomBefore = c.inst.runner.OOMKills()
	}
	if atOnce {
		started = true
		return c.runAtOnce(spec, files)
	}
	// The spawn waits for the agent whatever the context: given up, it
	// could leave a process running that nothing knows of.
	ans, pty, err := c.inst.agent.CmdSpawn(context.Background(), spec, files)
	if err != nil {
		return c.startErr(err)
	}
	c.handle = ans.Handle
	started = true
	c.Process = &Process{Pid: int(ans.Pid), cmd: c}
	st.closeChild()    // the process holds them now
	c.bindAgentCalls() // before anything that may kill it
	if err := st.started(c, pty); err != nil {
		c.kill(syscall.SIGKILL, true)
		c.goroutine = append(c.goroutine, func() error { return err })
	}
	c.startGoroutines()
	if (c.Cancel != nil || c.WaitDelay != 0) && c.ctx != nil && c.ctx.Done() != nil {
		resultc := make(chan ctxResult)
		c.ctxResult = resultc
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
	c.armBound()
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
		if killed && c.inst.opts.memoryMB > 0 && c.inst.runner.OOMKills() > c.oomBefore {
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
	if c.unbind != nil {
		c.unbind()
	}
	return err
}

// waitProcess asks the agent for the process's exit.
func (c *Cmd) waitProcess() (*ProcessState, error) {
	ctx, cancel := c.waitCtx()
	defer cancel()
	st, err := c.inst.agent.CmdWait(ctx, c.handle, ipc.WaitRelease)
	c.released.Store(true) // the agent forgot the handle, or the sandbox is gone
	if err != nil && ctx.Err() != nil && c.ctx.Err() != nil {
		return nil, fmt.Errorf("waiting for %s: the sandbox's agent did not report its end after the context ended (WaitDelay %v): %w", c.Path, c.WaitDelay, c.ctx.Err())
	}
	if err != nil {
		if aerr := c.inst.stoppedErr(err); aerr != nil {
			return nil, fmt.Errorf("waiting for %s: %w", c.Path, aerr)
		}
		return nil, fmt.Errorf("waiting for %s: %w", c.Path, err)
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
	w, r, err := c.stdio().stdinPipe(c)
	if err != nil {
		return nil, err
	}
	c.Stdin = r
	return w, nil
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
	r, w, err := c.stdio().outputPipe(c)
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
	r, w, err := c.stdio().outputPipe(c)
	if err != nil {
		return nil, err
	}
	c.Stderr = w
	return r, nil
}
