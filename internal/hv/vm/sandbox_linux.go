package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// Defaults for a sandbox without WithMemoryMB or WithCPUs.
const (
	defaultMemoryMB = 1024
	maxDefaultCPUs  = 2
)

// diskSerial names the writable disk to the guest.
const diskSerial = "cc-upper"

// sandbox is one running virtual machine.
type sandbox struct {
	cfg   *hv.Config
	cache string // the cache directory (see cacheDir)
	log   *slog.Logger
	cmd   *exec.Cmd
	con   *console
	sess  *agent.VMMux // nil until the agent serves
	// link is the host's end of the NIC's frames (nil without
	// cfg.Network); OpenLink hands out duplicates, and it is closed once
	// QEMU has exited.
	link *os.File

	proc *hv.Proc // QEMU's life
}

// launch is what start prepares for QEMU: the descriptors it inherits, in
// order from 3, and the command line.
type launch struct {
	files []*os.File
	spec  qemuSpec
	guest agent.VMConfig
}

// add hands f to QEMU and returns the descriptor number it gets there.
func (l *launch) add(f *os.File) int {
	l.files = append(l.files, f)
	return 2 + len(l.files)
}

func (l *launch) close() {
	for _, f := range l.files {
		f.Close()
	}
	l.files = nil
}

func start(ctx context.Context, cfg *hv.Config) (hv.Sandbox, error) {
	if cfg.PidsMax > 0 {
		return nil, errors.New("vm backend: a pids limit is not supported")
	}
	qemu, err := findQEMU()
	if err != nil {
		return nil, err
	}
	cache, err := cacheDir(cfg)
	if err != nil {
		return nil, err
	}
	k, err := findKernel(cfg.Kernel, cache)
	if err != nil {
		return nil, err
	}
	plan, err := planInitramfs("/proc/self/exe", k)
	if err != nil {
		return nil, fmt.Errorf("vm backend: %w", err)
	}
	initrd, err := buildInitramfs(filepath.Join(cache, "vm", "initramfs"), plan)
	if err != nil {
		return nil, fmt.Errorf("vm backend: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &sandbox{cfg: cfg, cache: cache, log: log, proc: hv.NewProc("QEMU"),
		con: &console{log: log, id: cfg.ID}}

	l := &launch{}
	defer l.close()
	ctl, remote, err := controlSocket()
	if err != nil {
		return nil, err
	}
	l.spec.ControlFD = l.add(remote)
	if err := s.prepare(l, k, initrd); err != nil {
		ctl.Close()
		return nil, err
	}
	if cfg.Network {
		host, guest, err := frameSocket()
		if err != nil {
			ctl.Close()
			return nil, err
		}
		s.link = host
		l.spec.NetFD = l.add(guest)
	}
	if l.spec.Accel, err = accelerator(qemu, hv.KVMOpen(cfg.IDMap)); err != nil {
		ctl.Close()
		return nil, err
	}
	l.spec.Machine = "q35"
	if ok, err := hasMachine(qemu, "microvm"); err != nil {
		ctl.Close()
		return nil, err
	} else if ok && l.spec.devices() <= maxDevices["microvm"] && os.Getenv("CC_VM_MACHINE") != "q35" {
		l.spec.Machine = "microvm"
	}
	l.spec.Cmdline = kernelCmdline(l.spec.Accel, l.spec.Machine, plan.Dynamic)
	args, err := qemuArgs(l.spec)
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("vm backend: %w", err)
	}
	if err := s.spawn(qemu, args, l); err != nil {
		ctl.Close()
		if s.link != nil {
			s.link.Close()
		}
		return nil, err
	}
	if err := s.handshake(ctx, ctl, &l.guest); err != nil {
		ctl.Close()
		s.Stop()
		return nil, err
	}
	log.Debug("vm started", "id", cfg.ID, "accel", l.spec.Accel, "machine", l.spec.Machine, "kernel", k.Path)
	return s, nil
}

// prepare opens what QEMU needs (kernel, initramfs, the writable disk,
// the shares) and fills in the QEMU and agent configurations.
func (s *sandbox) prepare(l *launch, k *kernel, initrd string) error {
	cfg := s.cfg
	open := func(p string, flags int) (int, error) {
		f, err := os.OpenFile(p, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		return l.add(f), nil
	}
	fd, err := open(bootImage(k, s.cache), os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("vm backend: kernel: %w", err)
	}
	// QEMU opens paths itself: through /proc/self/fd it reaches files whose
	// directories the sandbox's ids may not walk.
	l.spec.Kernel = "/proc/self/fd/" + strconv.Itoa(fd)
	if fd, err = open(initrd, os.O_RDONLY); err != nil {
		return fmt.Errorf("vm backend: initramfs: %w", err)
	}
	l.spec.Initrd = "/proc/self/fd/" + strconv.Itoa(fd)
	disk := filepath.Join(cfg.StateDir, "upper.img")
	if err := makeUpperDisk(disk, cfg.DiskMB); err != nil {
		return err
	}
	for i, mode := range []int{os.O_RDONLY, os.O_RDWR} {
		if l.spec.DiskFDs[i], err = open(disk, mode); err != nil {
			return fmt.Errorf("vm backend: %w", err)
		}
	}
	l.spec.DiskSerial = diskSerial
	l.guest.UpperSerial = diskSerial

	share := func(tag, p string, readOnly bool) error {
		fd, err := open(p, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		l.spec.Shares = append(l.spec.Shares, qemuShare{Tag: tag, Path: "/proc/self/fd/" + strconv.Itoa(fd), ReadOnly: readOnly})
		return nil
	}
	for i, layer := range cfg.Layers {
		tag := "l" + strconv.Itoa(i)
		if err := share(tag, layer, true); err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		l.guest.Layers = append(l.guest.Layers, tag)
	}
	for i, b := range cfg.Binds {
		tag := "b" + strconv.Itoa(i)
		dir, file, err := s.bindDir(l, i, b)
		if err != nil {
			return err
		}
		l.spec.Shares = append(l.spec.Shares, qemuShare{Tag: tag, Path: dir, ReadOnly: !b.Writable})
		l.guest.Binds = append(l.guest.Binds, agent.VMBind{Tag: tag, File: file, Path: b.Path, Writable: b.Writable})
	}
	l.guest.Hostname = cfg.Hostname
	l.guest.SingleID = cfg.IDMap.Single()

	l.spec.MemoryMB = cfg.MemoryMB
	if l.spec.MemoryMB == 0 {
		l.spec.MemoryMB = defaultMemoryMB
	}
	l.spec.CPUs = int(math.Ceil(cfg.CPUs))
	if l.spec.CPUs == 0 {
		l.spec.CPUs = min(runtime.NumCPU(), maxDefaultCPUs)
	}
	return nil
}

// bindDir returns the directory QEMU shares for a bind, as a path QEMU
// opens (/proc/self/fd/N), and the file's name in it when the bind is a
// file: 9p shares directories only, so a file is linked (or, read-only,
// copied) into a directory of its own in the state directory, and the
// guest sees nothing else of its host directory. The bind's source is
// opened once (hv.OpenBindSource: a path a network helper checked follows
// no link now) and used only through that descriptor, so that a path
// swapped after the check leads nowhere else: a directory's descriptor
// goes to QEMU (l.add), a file's is closed once linked or copied.
func (s *sandbox) bindDir(l *launch, i int, b hv.Bind) (dir, file string, err error) {
	fd, isDir, err := hv.OpenBindSource("", b)
	if err != nil {
		return "", "", fmt.Errorf("mount source: %w", err)
	}
	src := os.NewFile(uintptr(fd), b.HostPath)
	if isDir {
		return "/proc/self/fd/" + strconv.Itoa(l.add(src)), "", nil
	}
	defer src.Close()
	files := filepath.Join(s.cfg.StateDir, "files", strconv.Itoa(i))
	if err := os.MkdirAll(files, 0o755); err != nil {
		return "", "", err
	}
	file = filepath.Base(b.HostPath)
	dst := filepath.Join(files, file)
	// The link is made from the descriptor (its /proc/self/fd name,
	// followed), never from b.HostPath again.
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Linkat(unix.AT_FDCWD, self, unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW); err != nil {
		if b.Writable {
			return "", "", fmt.Errorf("vm backend: a writable file mount must be on the file system of the state directory (%s): %w",
				s.cfg.StateDir, &os.LinkError{Op: "link", Old: b.HostPath, New: dst, Err: err})
		}
		if err := copyFile(src, dst); err != nil {
			return "", "", fmt.Errorf("mount source: %w", err)
		}
	}
	fd, err = unix.Open(files, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", "", &os.PathError{Op: "open", Path: files, Err: err}
	}
	return "/proc/self/fd/" + strconv.Itoa(l.add(os.NewFile(uintptr(fd), files))), file, nil
}

// copyFile copies the regular file src (opened O_PATH) to the new file
// dst, its content and mode. Anything but a regular file is refused: a
// FIFO would hold the open, a device would copy without end.
func copyFile(src *os.File, dst string) error {
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &os.PathError{Op: "copy", Path: src.Name(), Err: errors.New("a read-only file mount that cannot be linked must be a regular file")}
	}
	// An O_PATH descriptor reads nothing: its /proc/self/fd name opens
	// the same file again, for reading.
	in, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(src.Fd())))
	if err != nil {
		return &os.PathError{Op: "open", Path: src.Name(), Err: errors.Unwrap(err)}
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// kernelCmdline is the guest kernel's command line. Parameters the kernel
// does not know reach /init as environment variables: the agent's marker,
// and the library path of a dynamically linked agent.
func kernelCmdline(accel, machine string, dynamic bool) string {
	args := []string{"console=ttyS0", "quiet", "panic=-1", "rdinit=/init", agent.EnvMarker + "=" + agent.ModeVM}
	if machine == "microvm" && accel == "tcg" {
		// Without it, microvm under emulation sometimes hangs calibrating
		// the TSC against a PIT it does not have.
		if khz := hostTSCkHz(); khz > 0 {
			args = append(args, "tsc_early_khz="+strconv.Itoa(khz))
		}
	}
	if dynamic {
		args = append(args, "LD_LIBRARY_PATH=/"+initLibDir)
	}
	return strings.Join(args, " ")
}

// hostTSCkHz returns the host's TSC frequency in kHz, which the guest's
// TSC has under TCG, or 0 when unknown.
func hostTSCkHz() int {
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(mhz * 1000)
			}
		}
	}
	return 0
}

// controlSocket returns the two ends of the control socket: the host's, and
// QEMU's, which backs the agent's virtio-serial port.
func controlSocket() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	hostFile := os.NewFile(uintptr(fds[0]), "vm-control")
	defer hostFile.Close()
	remote := os.NewFile(uintptr(fds[1]), "vm-control")
	c, err := net.FileConn(hostFile)
	if err != nil {
		remote.Close()
		return nil, nil, err
	}
	return c.(*net.UnixConn), remote, nil
}

// spawn starts QEMU in a user namespace with the sandbox's id mapping.
// The files of l are QEMU's descriptors from 3 on.
func (s *sandbox) spawn(qemu string, args []string, l *launch) error {
	logR, logW, err := os.Pipe()
	if err != nil {
		return err
	}
	s.cmd = &exec.Cmd{
		Path:        qemu,
		Args:        append([]string{qemu}, args...),
		Env:         []string{"PATH=/usr/bin:/bin"},
		Stdout:      logW,
		Stderr:      logW,
		ExtraFiles:  l.files,
		SysProcAttr: qemuProcAttr(s.cfg.IDMap, l.spec.Accel),
	}
	err = s.cmd.Start()
	logW.Close()
	l.close() // QEMU has its copies
	if err != nil {
		s.cmd = nil
		logR.Close()
		return fmt.Errorf("%w: starting QEMU: %v", ipc.ErrHypervisorUnavailable, err)
	}
	logDone := make(chan struct{})
	go s.con.copy(logR, logDone)
	s.proc.Watch(s.cmd, func() {
		<-logDone
		if s.link != nil {
			s.link.Close()
		}
	})
	return nil
}

// qemuProcAttr runs QEMU in new user, pid, network, ipc and uts
// namespaces, mapping ids as the namespace backend maps its sandboxes'
// (m): the layers' owners appear to the guest as the ids they stand for,
// files the guest creates in writable mounts get the host ids a namespace
// sandbox's would, and QEMU itself holds no host privilege. It dies with
// the host program (PR_SET_PDEATHSIG). As the first process of its pid
// namespace, QEMU ignores every signal it has no handler for from the
// fork on, so a terminal's ^C that reaches it before it leaves the host
// program's process group (Setpgid, done in the child after the fork)
// cannot kill it.
func qemuProcAttr(m idmap.Map, accel string) *syscall.SysProcAttr {
	return hv.LauncherProcAttr(m, false, accel == "kvm")
}

// handshake runs the agent's start exchange (see agent.VMHello) on the
// control socket, then starts the yamux session. It gives up when ctx
// ends or QEMU exits, with the console's last lines in the error.
func (s *sandbox) handshake(ctx context.Context, ctl *net.UnixConn, guest *agent.VMConfig) error {
	result := make(chan error, 1)
	go func() {
		line, err := agent.ReadVMLine(ctl)
		if err != nil {
			result <- fmt.Errorf("waiting for the agent: %w", err)
			return
		}
		if line != agent.VMHello {
			result <- fmt.Errorf("the agent greeted with %q, want %q (a host binary of another version?)", line, agent.VMHello)
			return
		}
		guest.UnixNano = time.Now().UnixNano()
		if err := agent.WriteVMConfig(ctl, guest); err != nil {
			result <- fmt.Errorf("configuring the agent: %w", err)
			return
		}
		line, err = agent.ReadVMLine(ctl)
		if err != nil {
			result <- fmt.Errorf("waiting for the agent's setup: %w", err)
			return
		}
		if line != agent.VMOK {
			result <- fmt.Errorf("sandbox setup: %s", line)
			return
		}
		result <- nil
	}()
	var err error
	select {
	case err = <-result:
	case <-ctx.Done():
		ctl.SetDeadline(time.Unix(1, 0))
		<-result
		err = fmt.Errorf("the VM did not start in time (%w)", ctx.Err())
	case <-s.proc.Done():
		ctl.SetDeadline(time.Unix(1, 0))
		<-result
		err = fmt.Errorf("QEMU exited during boot (%v)", s.proc.ExitErr())
	}
	if err != nil {
		s.Kill()
		<-s.proc.Done()
		return fmt.Errorf("vm backend: %w; the guest console's last lines:\n%s", err, s.con.last())
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
	c, err := s.sess.Open()
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s *sandbox) Done() <-chan struct{} { return s.proc.Done() }
func (s *sandbox) OpenUpper() (*untrusted.Dir, error) {
	return nil, fmt.Errorf("a VM keeps its writable layer on its own disk: %w", errors.ErrUnsupported)
}
func (s *sandbox) Pid() int { return s.cmd.Process.Pid }

// UpperDiskMB is the size of the disk that holds the writable layer, in
// MiB, which bounds what a snapshot of it can hold.
func (s *sandbox) UpperDiskMB() uint64 { return upperDiskMB(s.cfg.DiskMB) }

// Err reports why the VM stopped: nil when Stop or Kill stopped it.
func (s *sandbox) Err() error {
	if !s.proc.Ended() {
		return nil
	}
	return fmt.Errorf("sandbox vm exited (%v); the guest console's last lines:\n%s", s.proc.ExitErr(), s.con.last())
}

// Kill kills QEMU, and with it the guest. Its disk is scratch: nothing is
// lost that a snapshot would have kept.
func (s *sandbox) Kill() { s.proc.Kill(s.closeSession, nil) }

// Stop kills QEMU and waits for it.
func (s *sandbox) Stop() error { return s.proc.Stop(s.cfg.ID, s.closeSession, nil) }

// closeSession fails the calls waiting on the agent's connections.
func (s *sandbox) closeSession() {
	if s.sess != nil {
		s.sess.Close()
	}
}

// frameSocket returns a connected pair of datagram sockets for the guest
// NIC's frames: the host's end (non-blocking, for the egress stack's
// poller) and QEMU's. Large buffers keep bursts of 64 KB frames flowing.
func frameSocket() (host, guest *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("vm backend: the NIC's socket: %w", err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "vm-nic"), os.NewFile(uintptr(fds[1]), "vm-nic-guest"), nil
}

// OpenLink returns a duplicate of the host's end of the guest NIC, which
// the guest knows as eth0; the NIC exists only when the sandbox was
// started with cfg.Network. Closing the duplicate leaves the NIC in
// place (a VM cannot lose it), so disabling egress takes the link down
// in the guest instead.
func (s *sandbox) OpenLink(ifname string) (*os.File, error) {
	if s.link == nil {
		return nil, fmt.Errorf("the VM backend attaches its network device at boot: start the sandbox with WithNetwork to enable egress later: %w", errors.ErrUnsupported)
	}
	if ifname != "eth0" {
		return nil, fmt.Errorf("the VM's network device is eth0, not %q", ifname)
	}
	return fsutil.DupFile(s.link, "vm-nic")
}
