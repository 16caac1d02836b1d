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
	a.handle(ipc.MsgCmdNew, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		c, err := newCommand(req, dec)
		if err != nil {
			return nil, err
		}
		h := a.handles.add(c)
		return ok(func(e *ipc.Encoder) { e.Uint64(h) }), nil
	})
	a.handle(ipc.MsgCmdSpawn, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		c, err := newCommand(req, dec)
		if err != nil {
			return nil, err
		}
		resp, err := a.start(req, c)
		if err != nil {
			c.release()
			return nil, err
		}
		h := a.handles.add(c)
		// The answer of start is Success, pid: put the handle between.
		var e ipc.Encoder
		e.Uint8(ipc.ErrCodeOK)
		e.Uint64(h)
		resp.Payload = append(e.Bytes(), resp.Payload[1:]...)
		return resp, nil
	})
	a.handle(ipc.MsgCmdRun, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		c, err := newCommand(req, dec)
		if err != nil {
			return nil, err
		}
		defer c.release()
		if c.spec.Pty {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "run: a pty needs MsgCmdSpawn"}
		}
		if _, err := a.start(req, c); err != nil {
			return nil, err
		}
		p := c.proc
		if err := a.reaper.await(req, p); err != nil {
			// The client is gone: nothing can wait for or kill the
			// process any more.
			killTree(p.pid, syscall.SIGKILL)
			return nil, err
		}
		return ok(func(e *ipc.Encoder) {
			e.Int32(int32(p.pid))
			ipc.EncodeExitStatus(e, p.status)
		}), nil
	})
	handleOn(a, ipc.MsgCmdStart, lookup[*command], func(req *ipc.Request, c *command, dec *ipc.Decoder) (*ipc.Response, error) {
		return a.start(req, c)
	})
	a.handle(ipc.MsgCmdWait, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		h, err := dec.Uint64()
		if err != nil {
			return nil, err
		}
		flags, _ := dec.Uint8() // optional
		c, err := lookup[*command](a.handles, h)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		p := c.proc
		c.mu.Unlock()
		if p == nil {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "wait: not started"}
		}
		if err := a.reaper.await(req, p); err != nil {
			return nil, err
		}
		if flags&ipc.WaitRelease != 0 {
			if c, err := take[*command](a.handles, h); err == nil {
				c.release()
			}
		}
		return ok(func(e *ipc.Encoder) { ipc.EncodeExitStatus(e, p.status) }), nil
	})
	handleOn(a, ipc.MsgCmdKill, lookup[*command], func(req *ipc.Request, c *command, dec *ipc.Decoder) (*ipc.Response, error) {
		sig, err := dec.Int32()
		if err != nil {
			return nil, err
		}
		tree, _ := dec.Bool()
		c.mu.Lock()
		p := c.proc
		c.mu.Unlock()
		if p == nil {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "kill: not started"}
		}
		select {
		case <-p.exited:
			if !tree {
				return nil, os.ErrProcessDone
			}
		default:
		}
		if tree {
			killTree(p.pid, syscall.Signal(sig))
			return ok(nil), nil
		}
		if err := unix.Kill(p.pid, syscall.Signal(sig)); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil, os.ErrProcessDone
			}
			return nil, os.NewSyscallError("kill", err)
		}
		return ok(nil), nil
	})
	handleOn(a, ipc.MsgCmdFree, take[*command], func(_ *ipc.Request, c *command, _ *ipc.Decoder) (*ipc.Response, error) {
		c.release()
		return ok(nil), nil
	})
	handleOn(a, ipc.MsgCmdAttach, lookup[*command], func(req *ipc.Request, c *command, dec *ipc.Decoder) (*ipc.Response, error) {
		stream, err := dec.Uint8()
		if err != nil {
			return nil, err
		}
		return c.attach(stream)
	})
	handleOn(a, ipc.MsgCmdSetConsoleSize, lookup[*command], func(req *ipc.Request, c *command, dec *ipc.Decoder) (*ipc.Response, error) {
		rows, err := dec.Uint16()
		if err != nil {
			return nil, err
		}
		cols, err := dec.Uint16()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.pty == nil {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "set console size: the command has no pty here"}
		}
		return ok(nil), setWinsize(c.pty, rows, cols)
	})
}

// newCommand takes a CmdSpec and its files from a request.
func newCommand(req *ipc.Request, dec *ipc.Decoder) (*command, error) {
	spec, err := ipc.DecodeCmdSpec(dec)
	if err != nil {
		return nil, err
	}
	for _, st := range spec.Stdio {
		if st.Mode == ipc.StdioFile && (st.FileIndex < 0 || int(st.FileIndex) >= len(req.Files)) {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("stdio names file %d of %d", st.FileIndex, len(req.Files))}
		}
		if st.Mode == ipc.StdioPty && !spec.Pty {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "stdio on a pty without a pty"}
		}
	}
	c := &command{spec: spec, files: req.Files}
	req.Files = nil
	return c, nil
}

// start starts a created command.
func (a *agent) start(req *ipc.Request, c *command) (*ipc.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "exec: already started"}
	}
	spec := c.spec
	id, err := resolveUser(a.root, spec.User)
	if err != nil {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: err.Error(), Op: "exec"}
	}
	if a.cfg.SingleID && (id.uid != 0 || id.gid != 0) {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeUnsupported, Op: "exec", Message: fmt.Sprintf(
			"user %q (%d:%d): this sandbox maps only its root user (the host program runs unprivileged without subordinate ids)", spec.User, id.uid, id.gid)}
	}
	env := spec.Env
	if lookupEnv(env, "HOME") == "" {
		env = append(env, "HOME="+id.home)
	}
	path, err := a.lookPath(spec.Path, lookupEnv(env, "PATH"))
	if err != nil {
		return nil, err
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
		return nil, &fs.PathError{Op: "chdir", Path: dir, Err: err}
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
			return nil, err
		}
		c.pty, ptySlave = master, slave
		closeAfter = append(closeAfter, slave)
	}
	for i, st := range spec.Stdio {
		switch st.Mode {
		case ipc.StdioNull:
			f, err := a.devNull()
			if err != nil {
				return nil, err
			}
			child[i] = f
		case ipc.StdioFile:
			child[i] = c.files[st.FileIndex]
		case ipc.StdioStream:
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
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
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("unknown stdio mode %d", st.Mode)}
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
		return nil, startError(err, spec.Path, path, a.cfg.Workload)
	}
	c.proc = p
	resp := ok(func(e *ipc.Encoder) { e.Int32(int32(p.pid)) })
	if c.pty != nil && spec.WantFD && req.CanPassDescriptors() {
		resp.Files = []*os.File{c.pty} // sent, then closed here: the host holds the master
		c.pty = nil
	}
	return resp, nil
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
func (c *command) attach(stream uint8) (*ipc.Response, error) {
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
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("stream %d is not available to attach", stream)}
	}
	resp := ok(nil)
	resp.Hijack = func(conn net.Conn) {
		go pump(conn, f, stream)
	}
	return resp, nil
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
