package ns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/agent"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/untrusted"
	"golang.org/x/sys/unix"
)

// Backend starts namespace sandboxes. The zero value is ready to use.
type Backend struct {
	// cgroups: how sandboxes use cgroups; tests set it to reach the
	// paths of other hosts.
	cgroups cgroupMode
}

// Name returns "ns".
func (Backend) Name() string { return "ns" }

// Capabilities: descriptors pass, the upper directory is on the host.
func (Backend) Capabilities() hv.Capabilities {
	return hv.Capabilities{PassesDescriptors: true, HostUpperDir: true, AgentServesUntilDone: true}
}

// Start starts a sandbox: it prepares the state directory, re-executes the
// host binary as the agent in new namespaces, applies resource limits, and
// waits until the agent serves.
func (b Backend) Start(ctx context.Context, cfg *hv.Config) (hv.Sandbox, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
	if cfg.DiskMB > 0 {
		return nil, fmt.Errorf("WithDiskMB: the namespace backend keeps the writable layer on the host's file system, which gives it no size limit here (it would need project quotas): %w", errors.ErrUnsupported)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Clock.Mark("host check")
	s := &sandbox{cfg: cfg, log: log, proc: hv.NewProc("agent")}
	if err := s.prepareDirs(); err != nil {
		return nil, err
	}
	cfg.Clock.Mark("state files")
	cg, err := newCgroup(cfg, b.cgroups)
	if err != nil {
		return nil, err
	}
	s.cgroup = cg
	cfg.Clock.Mark("cgroup")
	if err := s.spawn(ctx); err != nil {
		if s.cmd == nil || s.cmd.Process == nil {
			s.cgroup.remove() // no wait goroutine will
		}
		return nil, err
	}
	return s, nil
}

// sandbox is one running namespace sandbox.
type sandbox struct {
	cfg    *hv.Config
	log    *slog.Logger
	cmd    *exec.Cmd
	dialer *ipc.ChannelDialer
	cgroup *cgroup // its directories may be none (no cgroup could be had)
	upper  string
	pid    int // the agent's

	proc *hv.Proc // the agent's life
}

func (s *sandbox) Dial(ctx context.Context) (net.Conn, error) { return s.dialer.Dial(ctx) }
func (s *sandbox) Channel() (*os.File, error)                 { return s.dialer.File() }
func (s *sandbox) Done() <-chan struct{}                      { return s.proc.Done() }
func (s *sandbox) Pid() int                                   { return s.pid }

// OpenUpper opens the writable layer as an untrusted tree.
func (s *sandbox) OpenUpper() (*untrusted.Dir, error) { return untrusted.Open(s.upper) }

// Err reports why the sandbox ended: nil when Stop ended it.
func (s *sandbox) Err() error {
	if !s.proc.Ended() {
		return nil
	}
	if s.cgroup.oomKilled() {
		return fmt.Errorf("sandbox killed: %w", ipc.ErrOutOfMemory)
	}
	if err := s.proc.ExitErr(); err != nil {
		return fmt.Errorf("sandbox agent: %w", err)
	}
	return errors.New("sandbox agent exited")
}

// prepareDirs creates the upper, work and rootfs directories, writes the
// sandbox's /etc/hosts, /etc/resolv.conf and /etc/hostname into the upper
// directory (files, not mounts: nothing to mount, and the fewest writes to
// the disk), and gives all of it to the sandbox's root.
func (s *sandbox) prepareDirs() error {
	dir := s.cfg.StateDir
	s.upper = filepath.Join(dir, "upper")
	dirs := []string{"upper", "upper/etc", "work", "rootfs"}
	if len(s.cfg.Layers) == 0 {
		dirs = append(dirs, "empty") // overlayfs needs a lower layer
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"hosts":       fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", s.cfg.Hostname),
		"resolv.conf": "nameserver 127.0.0.1\n",
		"hostname":    s.cfg.Hostname + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.upper, "etc", name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return nil // the user's own files: already the sandbox root's
	}
	uid, _ := s.cfg.IDMap.HostUID(0)
	gid, _ := s.cfg.IDMap.HostGID(0)
	for _, p := range []string{"", "upper", "upper/etc", "upper/etc/hosts", "upper/etc/resolv.conf", "upper/etc/hostname", "work"} {
		if err := os.Lchown(filepath.Join(dir, p), int(uid), int(gid)); err != nil {
			return err
		}
	}
	return nil
}

// GeneratedFiles are the files the backend writes into every sandbox's
// writable layer; snapshots leave them out.
var GeneratedFiles = []string{"etc/hosts", "etc/resolv.conf", "etc/hostname"}

// spawn starts the agent and waits for it to serve.
func (s *sandbox) spawn(ctx context.Context) error {
	local, remote, err := ipc.NewChannel()
	if err != nil {
		return err
	}
	var childEnds []*os.File // the child's copies, closed once it started
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
		childEnds = nil
	}
	defer closeChildEnds()
	childEnds = append(childEnds, remote)
	if s.dialer, err = ipc.NewChannelDialer(local); err != nil {
		return err
	}
	fail := func(err error) error {
		s.dialer.Close()
		return err
	}
	cfgHost, cfgChild, err := configSocket()
	if err != nil {
		return fail(err)
	}
	defer cfgHost.Close()
	childEnds = append(childEnds, cfgChild)
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer statusR.Close()
	childEnds = append(childEnds, statusW)

	owner := -1 // this program's uid (see owner_linux.go)
	if os.Geteuid() == 0 && !s.cfg.IDMap.Single() {
		owner = nextOwner()
	}
	s.cmd, err = s.cgroup.startAgent(func() *exec.Cmd {
		cmd := AgentCommand(s.cfg.IDMap)
		// The agent's stderr is its end of the channel too: what it logs
		// (and what the Go runtime prints if it dies) arrives as messages
		// on the channel, which is also how the host learns that the
		// agent is gone. No pipe, no descriptor of its own.
		cmd.Stderr = remote
		cmd.ExtraFiles = []*os.File{remote, cfgChild, statusW} // fds 3, 4, 5: see agent.Fd*
		return cmd
	}, owner)
	closeChildEnds()
	if err != nil {
		s.cmd = nil
		return fail(fmt.Errorf("starting the sandbox agent: %w", spawnError(err)))
	}
	s.pid = s.cmd.Process.Pid
	s.cfg.Clock.Mark("agent exec")
	s.proc.Adopt(s.cmd)
	go s.follow()
	stop := func(err error) error {
		s.Stop()
		return err
	}

	acfg, dirs, err := s.agentConfig(s.pid)
	if err != nil {
		return stop(err)
	}
	err = agent.SendConfig(cfgHost, dirs, acfg)
	for _, f := range dirs {
		f.Close()
	}
	if err != nil {
		return stop(err)
	}
	s.cfg.Clock.Mark("config sent")
	status := make(chan string, 1)
	var agentPhases string // set before status is sent to
	go func() {
		r := bufio.NewReader(statusR)
		line, _ := r.ReadString('\n')
		if rest, ok := strings.CutPrefix(line, agent.TracePrefix); ok {
			agentPhases = rest
			line, _ = r.ReadString('\n')
		}
		status <- strings.TrimSpace(line)
	}()
	select {
	case line := <-status:
		agent.ParsePhases(agentPhases, s.cfg.Clock.MarkAt)
		if line != "ok" {
			if line == "" {
				line = "the agent exited during setup"
			}
			return stop(fmt.Errorf("sandbox setup: %s", line))
		}
	case <-ctx.Done():
		statusR.Close()
		return stop(ctx.Err())
	}
	return nil
}

// follow forwards the agent's log from the channel until the agent is
// gone (its end of the channel closed) or the host closed its own end to
// kill it, then reaps it and removes its cgroups.
func (s *sandbox) follow() {
	var partial []byte // a line the agent has not ended yet
	s.dialer.Receive(func(b []byte) {
		for len(b) > 0 {
			line, rest, ok := bytes.Cut(b, []byte{'\n'})
			if !ok && len(partial)+len(line) < maxLogLine {
				partial = append(partial, line...)
				return
			}
			s.log.Warn("sandbox agent", "id", s.cfg.ID, "line", string(partial)+string(line))
			partial, b = nil, rest
		}
	})
	if len(partial) > 0 {
		s.log.Warn("sandbox agent", "id", s.cfg.ID, "line", string(partial))
	}
	s.proc.Reap(s.cgroup.remove)
}

// maxLogLine bounds a line of the agent's log; a longer one is logged in
// pieces.
const maxLogLine = 4096

// AgentCommand returns the command that starts a sandbox's agent: this
// program again, in new namespaces with the id mapping m, as the sandbox's
// root. The caller adds its stderr and descriptors 3 to 5 (see agent.Fd*);
// without them the agent exits at once with status 1.
func AgentCommand(m idmap.Map) *exec.Cmd {
	return &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{"cc-agent"},
		Env:  agent.Environ(agent.ModeNamespaces),
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
				syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWCGROUP,
			UidMappings:                idmap.SysProcIDMaps(m.UIDs),
			GidMappings:                idmap.SysProcIDMaps(m.GIDs),
			GidMappingsEnableSetgroups: !m.Single(),
			// Become the sandbox's root: the host's own ids are not mapped
			// when running as root, and an unmapped process has no
			// capabilities after exec.
			Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: m.Single()},
			Pdeathsig:  syscall.SIGKILL,
			// A session of its own from the start (newSession then finds
			// it made): a terminal's ^C goes to the host program's group,
			// whose handler may still want the sandbox, even one still
			// starting (to run a last command, or to Close it cleanly).
			Setsid: true,
		},
	}
}

// agentConfig returns what the agent needs to build the root, and the host
// directories it names, opened O_PATH through the agent's /proc/PID/root so
// that they belong to its mount namespace.
func (s *sandbox) agentConfig(pid int) (*agent.Config, []*os.File, error) {
	var files []*os.File
	root := fmt.Sprintf("/proc/%d/root", pid)
	open := func(p string, dir bool) (int, error) {
		flags := unix.O_PATH | unix.O_CLOEXEC
		if dir {
			flags |= unix.O_DIRECTORY
		}
		fd, err := unix.Open(root+p, flags, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: p, Err: err}
		}
		files = append(files, os.NewFile(uintptr(fd), p))
		return len(files) - 1, nil
	}
	fail := func(err error) (*agent.Config, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	c := &agent.Config{Hostname: s.cfg.Hostname, SingleID: s.cfg.IDMap.Single(), NoFile: s.cfg.NoFile, Unconfined: s.cfg.Unconfined, Trace: s.cfg.Clock.Enabled()}
	w, err := s.cgroup.workload(func(f *os.File) int {
		files = append(files, f)
		return len(files) - 1
	})
	if err != nil {
		return fail(fmt.Errorf("the sandbox's workload cgroup: %w", err))
	}
	c.Workload = w
	layers := s.cfg.Layers
	if len(layers) == 0 {
		layers = []string{filepath.Join(s.cfg.StateDir, "empty")}
	}
	for _, l := range layers {
		fd, err := open(l, true)
		if err != nil {
			return fail(fmt.Errorf("layer: %w", err))
		}
		c.Layers = append(c.Layers, fd)
	}
	for _, d := range []struct {
		fd   *int
		name string
	}{{&c.Upper, "upper"}, {&c.Work, "work"}, {&c.Rootfs, "rootfs"}} {
		if *d.fd, err = open(filepath.Join(s.cfg.StateDir, d.name), true); err != nil {
			return fail(err)
		}
	}
	for _, b := range s.cfg.Binds {
		// One open, its kind read from the descriptor: a path checked
		// with its links resolved (b.Resolved) follows none now.
		raw, isDir, err := hv.OpenBindSource(root, b)
		if err != nil {
			return fail(fmt.Errorf("mount source: %w", err))
		}
		files = append(files, os.NewFile(uintptr(raw), b.HostPath))
		c.Binds = append(c.Binds, agent.Bind{Source: len(files) - 1, Dir: isDir, Path: b.Path, Writable: b.Writable})
	}
	return c, files, nil
}

// configSocket returns the two ends of the agent's configuration socket.
func configSocket() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	hostFile := os.NewFile(uintptr(fds[0]), "agent-config")
	defer hostFile.Close()
	c, err := net.FileConn(hostFile)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "agent-config"), nil
}

// Kill kills the agent, and with it every process of the sandbox.
func (s *sandbox) Kill() { s.proc.Kill(s.beforeKill, s.afterKill) }

// Stop kills the agent, and with it every process of the sandbox, and
// waits for it.
func (s *sandbox) Stop() error { return s.proc.Stop(s.cfg.ID, s.beforeKill, s.afterKill) }

// beforeKill fails the calls waiting on the agent's channel.
func (s *sandbox) beforeKill() {
	if s.dialer != nil {
		s.dialer.Close()
	}
}

// afterKill thaws the sandbox: a task frozen by the v1 freezer cannot die.
func (s *sandbox) afterKill() { s.cgroup.thawV1() }

// spawnError explains the usual reasons a namespace clone fails.
func spawnError(err error) error {
	if le := hv.CloneLimit(err); le != nil {
		return le
	}
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EUSERS):
		return fmt.Errorf("%w: creating namespaces failed (%v): user namespaces are disabled or exhausted (see /proc/sys/user/max_user_namespaces and kernel.unprivileged_userns_clone)", ipc.ErrHypervisorUnavailable, err)
	}
	return err
}
