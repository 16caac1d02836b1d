package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"golang.org/x/sys/unix"
)

// defaultPath is searched when a command's environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// command is a command the host created.
type command struct {
	spec  ipc.CmdSpec
	files []*os.File // sent with MsgCmdNew; owned until start hands them on

	mu      sync.Mutex
	proc    *proc       // guarded by mu; nil before start
	streams [3]*os.File // guarded by mu: the agent's ends of stream pipes
	pty     *os.File    // guarded by mu: the pty master, when kept here
}

// release closes what the agent holds for the command.
func (c *command) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.files {
		f.Close()
	}
	c.files = nil
	for i, f := range c.streams {
		if f != nil {
			f.Close()
			c.streams[i] = nil
		}
	}
	if c.pty != nil {
		c.pty.Close()
		c.pty = nil
	}
}

func (a *agent) registerCommands() {
	ipc.Route(a.mux, ipc.MsgCmdNew, func(req *ipc.Request, spec *ipc.CmdSpec) (ipc.HandleAns, error) {
		c, err := newCommand(req, spec)
		if err != nil {
			return ipc.HandleAns{}, err
		}
		return ipc.HandleAns{Handle: a.handles.add(c)}, nil
	})
	ipc.Route(a.mux, ipc.MsgCmdSpawn, func(req *ipc.Request, spec *ipc.CmdSpec) (ipc.SpawnAns, error) {
		c, err := newCommand(req, spec)
		if err != nil {
			return ipc.SpawnAns{}, err
		}
		pid, err := a.start(req, c)
		if err != nil {
			c.release()
			return ipc.SpawnAns{}, err
		}
		return ipc.SpawnAns{Handle: a.handles.add(c), Pid: pid}, nil
	})
	ipc.Route(a.mux, ipc.MsgCmdRun, func(req *ipc.Request, spec *ipc.CmdSpec) (ipc.RunAns, error) {
		c, err := newCommand(req, spec)
		if err != nil {
			return ipc.RunAns{}, err
		}
		defer c.release()
		if c.spec.Pty {
			return ipc.RunAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "run: a pty needs MsgCmdSpawn"}
		}
		if _, err := a.start(req, c); err != nil {
			return ipc.RunAns{}, err
		}
		p := c.proc
		if err := a.reaper.await(req, p); err != nil {
			// The client is gone: nothing can wait for or kill the
			// process any more.
			killTree(p.pid, syscall.SIGKILL)
			return ipc.RunAns{}, err
		}
		return ipc.RunAns{Pid: int32(p.pid), Status: p.status}, nil
	})
	ipc.Route(a.mux, ipc.MsgCmdStart, func(req *ipc.Request, m *ipc.HandleReq) (ipc.PidAns, error) {
		c, err := lookup[*command](a.handles, m.Handle)
		if err != nil {
			return ipc.PidAns{}, err
		}
		pid, err := a.start(req, c)
		return ipc.PidAns{Pid: pid}, err
	})
	ipc.Route(a.mux, ipc.MsgCmdWait, func(req *ipc.Request, m *ipc.WaitReq) (ipc.ExitStatus, error) {
		c, err := lookup[*command](a.handles, m.Handle)
		if err != nil {
			return ipc.ExitStatus{}, err
		}
		p := c.started()
		if p == nil {
			return ipc.ExitStatus{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "wait: not started"}
		}
		if err := a.reaper.await(req, p); err != nil {
			return ipc.ExitStatus{}, err
		}
		if m.Flags&ipc.WaitRelease != 0 {
			if c, err := take[*command](a.handles, m.Handle); err == nil {
				c.release()
			}
		}
		return p.status, nil
	})
	ipc.Route(a.mux, ipc.MsgCmdKill, func(_ *ipc.Request, m *ipc.KillReq) (ipc.Empty, error) {
		c, err := lookup[*command](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		p := c.started()
		if p == nil {
			return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "kill: not started"}
		}
		select {
		case <-p.exited:
			if !m.Tree {
				return ipc.Empty{}, os.ErrProcessDone
			}
		default:
		}
		if m.Tree {
			killTree(p.pid, syscall.Signal(m.Signal))
			return ipc.Empty{}, nil
		}
		if err := unix.Kill(p.pid, syscall.Signal(m.Signal)); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return ipc.Empty{}, os.ErrProcessDone
			}
			return ipc.Empty{}, os.NewSyscallError("kill", err)
		}
		return ipc.Empty{}, nil
	})
	ipc.Route(a.mux, ipc.MsgCmdFree, func(_ *ipc.Request, m *ipc.HandleReq) (ipc.Empty, error) {
		c, err := take[*command](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		c.release()
		return ipc.Empty{}, nil
	})
	ipc.Route(a.mux, ipc.MsgCmdAttach, func(req *ipc.Request, m *ipc.AttachReq) (ipc.Empty, error) {
		c, err := lookup[*command](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		return ipc.Empty{}, c.attach(req, m.Stream)
	})
	ipc.Route(a.mux, ipc.MsgCmdSetConsoleSize, func(_ *ipc.Request, m *ipc.ConsoleSizeReq) (ipc.Empty, error) {
		c, err := lookup[*command](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.pty == nil {
			return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "set console size: the command has no pty here"}
		}
		return ipc.Empty{}, setWinsize(c.pty, m.Rows, m.Cols)
	})
}

// started returns the command's process, or nil before it starts.
func (c *command) started() *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// newCommand takes a CmdSpec and its files from a request.
func newCommand(req *ipc.Request, spec *ipc.CmdSpec) (*command, error) {
	for _, st := range spec.Stdio {
		if st.Mode == ipc.StdioFile && (st.FileIndex < 0 || int(st.FileIndex) >= len(req.Files)) {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("stdio names file %d of %d", st.FileIndex, len(req.Files))}
		}
		if st.Mode == ipc.StdioPty && !spec.Pty {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "stdio on a pty without a pty"}
		}
	}
	c := &command{spec: *spec, files: req.Files}
	req.Files = nil
	return c, nil
}

// start starts a created command and returns its pid; the pty master
// goes with the answer where the spec asked for it and the connection can
// carry it.
func (a *agent) start(req *ipc.Request, c *command) (int32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return 0, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "exec: already started"}
	}
	spec := c.spec
	id, err := resolveUser(a.root, spec.User)
	if err != nil {
		return 0, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: err.Error(), Op: "exec"}
	}
	if a.cfg.SingleID && (id.uid != 0 || id.gid != 0) {
		return 0, &ipc.IPCError{Code: ipc.ErrCodeUnsupported, Op: "exec", Message: fmt.Sprintf(
			"user %q (%d:%d): this sandbox maps only its root user (the host program runs unprivileged without subordinate ids)", spec.User, id.uid, id.gid)}
	}
	env := spec.Env
	if lookupEnv(env, "HOME") == "" {
		env = append(env, "HOME="+id.home)
	}
	path, err := a.lookPath(spec.Path, lookupEnv(env, "PATH"))
	if err != nil {
		return 0, err
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	// The working directory is resolved here, as every path is, and the
	// child enters it through its copy of the agent's descriptor: a path
	// string resolved in the child could lead through a magic link.
	dirfd, err := a.root.openat2(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return 0, &fs.PathError{Op: "chdir", Path: dir, Err: err}
	}
	defer unix.Close(dirfd)

	// The child's three standard streams, and what to close once it runs.
	var child [3]*os.File
	var closeAfter []*os.File
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	var ptySlave *os.File
	if spec.Pty {
		master, slave, err := openPty(spec.Rows, spec.Cols)
		if err != nil {
			return 0, err
		}
		c.pty, ptySlave = master, slave
		closeAfter = append(closeAfter, slave)
	}
	for i, st := range spec.Stdio {
		switch st.Mode {
		case ipc.StdioNull:
			f, err := a.devNull()
			if err != nil {
				return 0, err
			}
			child[i] = f
		case ipc.StdioFile:
			child[i] = c.files[st.FileIndex]
		case ipc.StdioStream:
			r, w, err := os.Pipe()
			if err != nil {
				return 0, err
			}
			if i == 0 {
				child[i], c.streams[i] = r, w
				closeAfter = append(closeAfter, r)
			} else {
				child[i], c.streams[i] = w, r
				closeAfter = append(closeAfter, w)
			}
		case ipc.StdioPty:
			child[i] = ptySlave
		default:
			return 0, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("unknown stdio mode %d", st.Mode)}
		}
	}
	closeAfter = append(closeAfter, c.files...)
	c.files = nil

	// Every command is the leader of a session of its own, with no
	// controlling terminal unless it has a pty.
	sys := &syscall.SysProcAttr{Setsid: true}
	if spec.Pty {
		sys = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		for i, st := range spec.Stdio {
			if st.Mode == ipc.StdioPty {
				sys.Ctty = i
				break
			}
		}
		if spec.Stdio[0].Mode != ipc.StdioPty && spec.Stdio[1].Mode != ipc.StdioPty && spec.Stdio[2].Mode != ipc.StdioPty {
			// The controlling terminal must be one of the child's descriptors.
			child = [3]*os.File{ptySlave, ptySlave, ptySlave}
		}
	}
	// With one id mapped there are no supplementary groups to set (and
	// setgroups is denied): root runs with its own group only.
	if !a.cfg.SingleID && (id.uid != 0 || id.gid != 0 || len(id.groups) > 1) {
		sys.Credential = &syscall.Credential{Uid: id.uid, Gid: id.gid, Groups: id.groups}
	}
	// syscall.ForkExec rather than os.StartProcess: the reaper, not an
	// os.Process, waits for the process, and os.StartProcess would stat the
	// directory and duplicate the pidfd on every start.
	attr := &syscall.ProcAttr{Dir: fdPath(dirfd), Env: env, Files: []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd()}, Sys: sys}
	p, err := a.reaper.start(func(pidfd *int) (int, error) {
		sys.PidFD = pidfd
		return a.cfg.Workload.fork(func() (int, error) { return syscall.ForkExec(path, spec.Args, attr) })
	})
	runtime.KeepAlive(child)
	if err != nil {
		return 0, startError(err, spec.Path, path, a.cfg.Workload)
	}
	c.proc = p
	if c.pty != nil && spec.WantFD && req.CanPassDescriptors() {
		req.SendFiles(c.pty) // sent, then closed here: the host holds the master
		c.pty = nil
	}
	return int32(p.pid), nil
}

// devNull returns the agent's null device, opened for reading and writing
// on first use and shared by every command whose stream is discarded. The
// sandbox's /dev is its own to change: whatever is there must be the null
// device.
func (a *agent) devNull() (*os.File, error) {
	a.nullOnce.Do(func() {
		a.null, a.nullErr = a.root.open(os.DevNull, os.O_RDWR, 0)
		if a.nullErr != nil {
			return
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(a.null.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			a.null.Close()
			a.null, a.nullErr = nil, &fs.PathError{Op: "open", Path: os.DevNull, Err: errors.New("not the null device")}
		}
	})
	return a.null, a.nullErr
}

// startError makes the error of a failed start say what failed, and which
// of the sandbox's limits (w) refused it.
func startError(err error, name, path string, w *Workload) error {
	if errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("exec %s: %w (is the user mapped in this sandbox?)", name, err)
	}
	if errno, ok := err.(syscall.Errno); ok {
		return &fs.PathError{Op: "fork/exec", Path: path, Err: w.limitError(errno)}
	}
	return err
}

// lookupEnv returns the value of key in env; the last one wins.
func lookupEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// lookPath finds the program name in PATH, as exec.LookPath does, inside
// the sandbox; a name with a slash is used as it is.
func (a *agent) lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if path == "" {
		path = defaultPath
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := a.root.stat(p); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Mode&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// attach hands the connection over to one of the command's streams.
func (c *command) attach(req *ipc.Request, stream uint8) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var f *os.File
	switch {
	case stream == ipc.StreamPty:
		f, c.pty = c.pty, nil
	case stream <= ipc.StreamStderr:
		f, c.streams[stream] = c.streams[stream], nil
	}
	if f == nil {
		return &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("stream %d is not available to attach", stream)}
	}
	req.HijackWith(func(conn net.Conn) {
		go pump(conn, f, stream)
	})
	return nil
}

// pump copies between a stream's connection and its pipe or pty, closing
// both when done.
func pump(conn net.Conn, f *os.File, stream uint8) {
	defer conn.Close()
	defer f.Close()
	switch stream {
	case ipc.StreamStdin:
		io.Copy(f, conn)
	case ipc.StreamPty:
		go func() { io.Copy(f, conn); f.Close() }()
		io.Copy(conn, f)
	default:
		io.Copy(conn, f)
	}
}

// warmUp does once, ahead of the first command, what the first command
// would otherwise pay for: the check that pidfds work, the parse of the
// user files, the null device.
func (a *agent) warmUp() {
	pidfdsWork()
	resolveUser(a.root, "")
	a.devNull()
}
