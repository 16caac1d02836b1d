package gvisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ccsandbox/sandbox/internal/agent"
	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/untrusted"
	"golang.org/x/sys/unix"
)

// startTimeout bounds how long a sandbox may take to answer: gVisor starts
// in a fraction of a second, so a sandbox still silent then is stuck.
const startTimeout = time.Minute

// outputLines is how many of the launcher's last output lines (runsc's
// errors, the agent's) a sandbox keeps for its errors.
const outputLines = 40

// sandbox is one running gVisor sandbox.
type sandbox struct {
	cfg    *hv.Config
	log    *slog.Logger
	cmd    *exec.Cmd
	cgroup *cgroup      // nil without memory or CPU limits
	sess   *agent.VMMux // nil until the agent serves
	// link is the host's end of the egress frames; OpenLink hands out
	// duplicates, and it is closed once the launcher has exited.
	link *os.File

	proc     *hv.Proc // the launcher's life: waited for, killed once
	oomKills int      // the cgroup's count at the end, set before proc.Done closes

	mu   sync.Mutex
	tail []string // guarded by mu: the launcher's last output lines
}

func start(ctx context.Context, cfg *hv.Config, self bool) (hv.Sandbox, error) {
	r, err := findRunsc(self)
	if err != nil {
		return nil, err
	}
	plat, err := platform(cfg.IDMap)
	if err != nil {
		return nil, err
	}
	libs, err := agentLibs()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &plan{
		Runsc: r.path, Argv0: r.path, ID: "cc-" + cfg.ID, Libs: libs, Hostname: cfg.Hostname, platform: plat,
		// --in-sandbox-cgroup=v2: runsc mounts none of its seven v1
		// cgroup hierarchies, where gVisor checks few forks against the
		// agent's pids limit (see agent.limitTasks).
		Flags: []string{"--root=" + filepath.Join(work, "state"), "--network=none", "--ignore-cgroups",
			"--in-sandbox-cgroup=v2", "--overlay2=none", "--platform=" + plat},
		Agent: agent.GVisorConfig{Hostname: cfg.Hostname, SingleID: cfg.IDMap.Single(), DiskMB: cfg.DiskMB,
			PidsMax: cfg.PidsMax, NoFile: cfg.NoFile, Unconfined: cfg.Unconfined},
	}
	if r.self {
		p.Argv0, p.Self = runscArgv0, true
	}
	if dir := os.Getenv("CC_GVISOR_DEBUG"); dir != "" {
		p.Flags = append(p.Flags, "--debug", "--debug-log="+dir+"/")
	}
	s := &sandbox{cfg: cfg, log: log, proc: hv.NewProc("the gVisor launcher")}
	if s.cgroup, err = newCgroup(cfg); err != nil {
		return nil, err
	}
	ctl, err := s.spawn(p)
	if err != nil {
		s.cgroup.remove()
		return nil, err
	}
	if err := s.handshake(ctx, ctl); err != nil {
		ctl.Close()
		s.Stop()
		return nil, err
	}
	log.Debug("gvisor sandbox started", "id", cfg.ID, "runsc", r.path, "platform", plat)
	return s, nil
}

// spawn starts the launcher, moves it into the cgroup and sends it the
// host files it needs. It returns the host's end of the channel.
func (s *sandbox) spawn(p *plan) (*net.UnixConn, error) {
	var files []*os.File // the launcher's descriptors from 3 on
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	hostEnd, agentEnd, err := socketPair(unix.SOCK_STREAM)
	if err != nil {
		return nil, err
	}
	files = append(files, agentEnd)
	c, err := net.FileConn(hostEnd)
	hostEnd.Close()
	if err != nil {
		return nil, err
	}
	ctl := c.(*net.UnixConn)
	hostFrames, agentFrames, err := socketPair(unix.SOCK_DGRAM)
	if err != nil {
		ctl.Close()
		return nil, err
	}
	files = append(files, agentFrames)
	s.link = hostFrames
	hostFiles, launcherFiles, err := socketPair(unix.SOCK_SEQPACKET)
	if err != nil {
		ctl.Close()
		s.link.Close()
		return nil, err
	}
	defer hostFiles.Close()
	files = append(files, launcherFiles)
	p.Layers = len(s.cfg.Layers)
	for i, b := range s.cfg.Binds {
		fi, err := os.Stat(b.HostPath)
		if err != nil {
			ctl.Close()
			s.link.Close()
			return nil, fmt.Errorf("mount source: %w", err)
		}
		p.Binds = append(p.Binds, planBind{Dir: fi.IsDir()})
		p.Agent.Binds = append(p.Agent.Binds, agent.GVisorBind{Index: i, Dir: fi.IsDir(), Path: b.Path, Writable: b.Writable})
	}
	js, err := json.Marshal(p)
	if err != nil {
		ctl.Close()
		s.link.Close()
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		s.link.Close()
		return nil, err
	}
	s.cmd = &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{"cc-gvisor-launcher"},
		Env:         []string{launchEnv + "=" + string(js)},
		Stdout:      outW,
		Stderr:      outW,
		ExtraFiles:  files,
		SysProcAttr: procAttr(s.cfg.IDMap, p.platform),
	}
	err = s.cmd.Start()
	outW.Close()
	if err != nil {
		s.cmd = nil
		outR.Close()
		ctl.Close()
		s.link.Close()
		return nil, fmt.Errorf("%w: starting the gVisor launcher: %v", ipc.ErrHypervisorUnavailable, err)
	}
	outDone := make(chan struct{})
	go s.collect(outR, outDone)
	s.proc.Watch(s.cmd, func() {
		<-outDone
		s.link.Close()
		s.oomKills = s.cgroup.oomKills()
		s.cgroup.remove()
	})
	err = s.cgroup.add(s.cmd.Process.Pid)
	if err == nil {
		err = s.sendFiles(hostFiles, s.cmd.Process.Pid)
	}
	if err != nil {
		ctl.Close()
		s.Kill()
		<-s.proc.Done()
		return nil, err
	}
	return ctl, nil
}

// sendFiles sends the launcher the host files of its plan: the host
// binary (the agent), the layers and the bind sources, opened O_PATH
// through its /proc/PID/root so that they belong to its mount namespace
// (bind mounts and overlayfs refuse anything else), then closes conn.
func (s *sandbox) sendFiles(conn *os.File, pid int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("gvisor backend: the host binary: %w", err)
	}
	paths := append(append([]string{exe}, s.cfg.Layers...), make([]string, 0, len(s.cfg.Binds))...)
	for _, b := range s.cfg.Binds {
		paths = append(paths, b.HostPath)
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for i, p := range paths {
		var fd int
		var err error
		if i > len(s.cfg.Layers) {
			// a mount source, which a network helper's check may have
			// resolved (Resolved): it follows no link now
			fd, _, err = hv.OpenBindSource(root, s.cfg.Binds[i-1-len(s.cfg.Layers)])
		} else if fd, err = unix.Open(root+p, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			err = &os.PathError{Op: "open", Path: p, Err: err}
		}
		if err != nil {
			what := "mount source"
			switch {
			case i == 0:
				what = "the host binary"
			case i <= len(s.cfg.Layers):
				what = "layer"
			}
			return fmt.Errorf("gvisor backend: %s: %w", what, err)
		}
		fds = append(fds, fd)
	}
	for sent := 0; sent < len(fds); sent += filesPerMessage {
		batch := fds[sent:min(sent+filesPerMessage, len(fds))]
		if err := unix.Sendmsg(int(conn.Fd()), []byte{'F'}, unix.UnixRights(batch...), nil, 0); err != nil {
			return fmt.Errorf("gvisor backend: sending files to the launcher: %w", err)
		}
	}
	return conn.Close()
}

// socketPair returns a connected pair of Unix sockets of that type: the
// host's end and the sandbox's. The host's end of a datagram pair (the
// egress frames) is non-blocking, for the egress stack's poller, and both
// ends have large buffers, for bursts of 64 KB frames.
func socketPair(typ int) (host, sandbox *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	if typ == unix.SOCK_DGRAM {
		for _, fd := range fds {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		}
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return nil, nil, err
		}
	}
	return os.NewFile(uintptr(fds[0]), "gvisor-host"), os.NewFile(uintptr(fds[1]), "gvisor-sandbox"), nil
}

// procAttr runs the launcher in new user, mount, pid, network, ipc and uts
// namespaces, mapping ids as the namespace backend maps its sandboxes'
// (m): the layers' owners appear to the sandbox as the ids they stand for,
// and files it creates in writable mounts get the host ids a namespace
// sandbox's would. As the pid namespace's first process, the launcher
// takes every process of the sandbox with it when it dies, and it dies
// with the host program (PR_SET_PDEATHSIG).
func procAttr(m idmap.Map, plat string) *syscall.SysProcAttr {
	return hv.LauncherProcAttr(m, true, plat == platformKVM)
}

// collect reads the launcher's output (runsc's errors, the agent's) to its
// end, keeping the last lines, then closes done.
func (s *sandbox) collect(r io.ReadCloser, done chan<- struct{}) {
	defer close(done)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		s.log.Warn("sandbox gvisor", "id", s.cfg.ID, "line", line)
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > outputLines {
			s.tail = s.tail[len(s.tail)-outputLines:]
		}
		s.mu.Unlock()
	}
}

// last returns the kept output lines, for an error message.
func (s *sandbox) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tail) == 0 {
		return "(no output)"
	}
	return strings.Join(s.tail, "\n")
}

// handshake waits for the agent's answer on the channel, then starts the
// yamux session. It gives up when ctx ends or the launcher exits, with its
// last output in the error.
func (s *sandbox) handshake(ctx context.Context, ctl *net.UnixConn) error {
	result := make(chan error, 1)
	go func() {
		line, err := agent.ReadVMLine(ctl)
		switch {
		case err != nil:
			result <- fmt.Errorf("waiting for the agent: %w", err)
		case line != agent.VMOK:
			result <- fmt.Errorf("sandbox setup: %s", line)
		default:
			result <- nil
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var err error
	select {
	case err = <-result:
	case <-ctx.Done():
		ctl.SetDeadline(time.Unix(1, 0))
		<-result
		err = fmt.Errorf("the sandbox did not start in time (%w)", ctx.Err())
	}
	if err != nil {
		s.Kill()
		<-s.proc.Done()
		return fmt.Errorf("gvisor backend: %w; runsc's last output:\n%s", err, s.last())
	}
	sess, err := agent.NewVMMuxClient(ctl)
	if err != nil {
		return err
	}
	s.sess = sess
	return nil
}

// Dial opens a new connection to the agent: a yamux stream.
func (s *sandbox) Dial(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.sess.Open()
}

func (s *sandbox) Done() <-chan struct{} { return s.proc.Done() }
func (s *sandbox) OpenUpper() (*untrusted.Dir, error) {
	return nil, fmt.Errorf("gVisor keeps the writable layer in its own memory: %w", errors.ErrUnsupported)
}
func (s *sandbox) Pid() int { return s.cmd.Process.Pid }

// UpperDiskMB is what the writable layer can hold, in MiB, which bounds
// what a snapshot of it can hold: its tmpfs's size (WithDiskMB), else the
// sandbox's memory, where gVisor keeps it; 0 when neither is set.
func (s *sandbox) UpperDiskMB() uint64 {
	if s.cfg.DiskMB > 0 {
		return s.cfg.DiskMB
	}
	return s.cfg.MemoryMB
}

// Err reports why the sandbox stopped: ipc.ErrOutOfMemory when the host
// killed it for its memory limit, else nil when Stop or Kill stopped it.
func (s *sandbox) Err() error {
	select {
	case <-s.proc.Done():
	default:
		return nil
	}
	// The host's OOM killer takes the sentry: the agent's connections
	// break, and the engine may Stop the sandbox before it sees Done.
	if s.oomKills > 0 {
		return fmt.Errorf("gvisor sandbox killed: %w", ipc.ErrOutOfMemory)
	}
	if !s.proc.Ended() {
		return nil
	}
	return fmt.Errorf("gvisor sandbox exited (%v); runsc's last output:\n%s", s.proc.ExitErr(), s.last())
}

// OOMKills returns how many processes of the sandbox the host killed for
// memory: the sentry, which takes the whole sandbox with it.
func (s *sandbox) OOMKills() int {
	select {
	case <-s.proc.Done():
		return s.oomKills
	default:
		return s.cgroup.oomKills()
	}
}

// Kill kills the launcher, and with it, as its pid namespace ends, every
// process of the sandbox, then closes the agent's session while they die
// (closing it waits for the session's loops, 2-3 ms that the teardown
// hides).
func (s *sandbox) Kill() { s.proc.Kill(nil, s.closeSession) }

// Stop kills the sandbox and waits until its processes are gone.
func (s *sandbox) Stop() error { return s.proc.Stop(s.cfg.ID, nil, s.closeSession) }

// closeSession fails the calls waiting on the agent's connections.
func (s *sandbox) closeSession() {
	if s.sess != nil {
		s.sess.Close()
	}
}

// OpenLink returns a duplicate of the host's end of the egress frames; the
// agent creates the device ifname in gVisor's stack when the host enables
// egress (MsgInstanceSetNetwork), and removes it when the host disables
// it.
func (s *sandbox) OpenLink(ifname string) (*os.File, error) {
	return fsutil.DupFile(s.link, "gvisor-frames")
}

// agentLibs returns, for a dynamically linked host binary, the host
// directories its interpreter and libraries are in (see libDirs); nil for
// a static one.
func agentLibs() ([]string, error) {
	interp, err := interpreter("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("gvisor backend: the host binary: %w", err)
	}
	if interp == "" {
		return nil, nil
	}
	dirs := []string{filepath.Dir(interp)}
	for _, d := range libDirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && d != dirs[0] {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// libDirs are where a dynamically linked agent's libraries may be.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64"}
