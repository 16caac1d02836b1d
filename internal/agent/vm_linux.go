package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Where the VM agent keeps things in the initramfs, which stays its
// private root under the sandbox's.
const (
	vmModules = "/modules"       // the kernel modules, and "order", the names to load in order
	vmRun     = "/run/cc"        // mount points of the shares, the disk and the new root
	vmWait    = 60 * time.Second // how long devices may take to appear (emulation is slow)
)

// runVM is the agent's life as /init of a virtual machine: it mounts the
// kernel's file systems, loads the modules the host put in the initramfs,
// opens its virtio-serial port, receives its VMConfig (see VMHello), builds
// the root (9p layers under an overlay whose writable layer is an ext4
// disk) and moves into it, serves the host over a yamux session until the
// host goes, and powers the machine off. As PID 1 it does not return.
func runVM() error {
	err := bootVM()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cc agent: %v\n", err)
	}
	if os.Getpid() == 1 {
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	return err
}

func bootVM() error {
	if err := newSession(); err != nil {
		return err
	}
	os.Unsetenv(EnvMarker)
	os.Unsetenv("LD_LIBRARY_PATH") // set for a dynamically linked agent only
	if err := mountKernelFS(); err != nil {
		return err
	}
	if err := closeInherited(); err != nil {
		return err
	}
	if err := loadModules(vmModules); err != nil {
		return err
	}
	port, err := openPort(VMPort)
	if err != nil {
		return err
	}
	defer port.Close()
	if _, err := port.WriteString(VMHello + "\n"); err != nil {
		return fmt.Errorf("greeting the host: %w", err)
	}
	cfg, err := ReadVMConfig(port)
	if err != nil {
		return err
	}
	if cfg.UnixNano != 0 {
		tv := unix.NsecToTimeval(cfg.UnixNano)
		unix.Settimeofday(&tv) // best effort: the RTC is close already
	}
	upper, err := buildVMRoot(cfg)
	if err != nil {
		fmt.Fprintf(port, "%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return err
	}
	// The VM's agent powers the machine off at the end: it keeps reboot.
	caps, err := harden(false, "reboot")
	if err != nil {
		fmt.Fprintf(port, "%s\n", err)
		return err
	}
	holdSignals()
	a, err := newAgent(&Config{Hostname: cfg.Hostname, SingleID: cfg.SingleID},
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintf(port, "%s\n", err)
		return err
	}
	a.reaper.caps = caps
	a.upper = upper
	return a.serveSession(port, "vm agent")
}

// mountKernelFS mounts /proc, /sys and /dev in the initramfs.
func mountKernelFS() error {
	for _, m := range []struct{ dir, fstype string }{{"/proc", "proc"}, {"/sys", "sysfs"}, {"/dev", "devtmpfs"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mounting %s: %w", m.dir, err)
		}
	}
	return nil
}

// loadModules loads the modules named in dir/order, in that order.
func loadModules(dir string) error {
	order, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		return fmt.Errorf("the initramfs lists no modules: %w", err)
	}
	for _, name := range strings.Fields(string(order)) {
		f, err := os.Open(filepath.Join(dir, name+".ko"))
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading module %s: %w", name, err)
		}
	}
	return nil
}

// openPort opens the virtio-serial port of that name once it appears.
func openPort(name string) (*os.File, error) {
	deadline := time.Now().Add(vmWait)
	for {
		entries, _ := os.ReadDir("/sys/class/virtio-ports")
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				f, err := os.OpenFile("/dev/"+e.Name(), os.O_RDWR|unix.O_CLOEXEC, 0)
				if err != nil {
					return nil, fmt.Errorf("opening the port %s: %w", name, err)
				}
				return f, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no virtio-serial port named %s after %v", name, vmWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// findDisk returns the device node of the virtio disk with that serial.
func findDisk(serial string) (string, error) {
	deadline := time.Now().Add(vmWait)
	for {
		entries, _ := os.ReadDir("/sys/block")
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "serial"))
			if err == nil && strings.TrimSpace(string(b)) == serial {
				return "/dev/" + e.Name(), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no disk with serial %s after %v", serial, vmWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mount9p mounts the 9p share tag at dir. Read-only shares are cached
// (layers never change; a read-only mount of a host directory shows host
// changes late); writable ones write through.
func mount9p(tag, dir string, writable bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	opts := "trans=virtio,version=9p2000.L,access=client,msize=262144,"
	var flags uintptr = unix.MS_NODEV
	if writable {
		opts += "cache=mmap"
	} else {
		opts += "cache=loose"
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(tag, dir, "9p", flags, opts); err != nil {
		return fmt.Errorf("mounting the host share %s: %w", tag, err)
	}
	return nil
}

// buildVMRoot mounts what cfg names and makes the sandbox's root of it with
// the namespace agent's setup, entering it with moveRoot. It returns the
// overlay's upper directory, which the new root no longer reaches, for
// snapshots.
func buildVMRoot(cfg *VMConfig) (*os.File, error) {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	open := func(p string) (int, error) {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: p, Err: err}
		}
		fds = append(fds, fd)
		return fd, nil
	}
	c := &Config{Hostname: cfg.Hostname, SingleID: cfg.SingleID}
	layers := cfg.Layers
	for i, tag := range layers {
		dir := filepath.Join(vmRun, "layer", strconv.Itoa(i))
		if err := mount9p(tag, dir, false); err != nil {
			return nil, err
		}
		fd, err := open(dir)
		if err != nil {
			return nil, err
		}
		c.Layers = append(c.Layers, fd)
	}
	if len(layers) == 0 { // overlayfs needs a lower layer
		dir := filepath.Join(vmRun, "empty")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		fd, err := open(dir)
		if err != nil {
			return nil, err
		}
		c.Layers = append(c.Layers, fd)
	}
	upper, work, err := mountUpper(cfg)
	if err != nil {
		return nil, err
	}
	if c.Upper, err = open(upper); err != nil {
		return nil, err
	}
	keep, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: upper, Err: err}
	}
	kept := os.NewFile(uintptr(keep), "upper")
	if c.Work, err = open(work); err != nil {
		return nil, err
	}
	root := filepath.Join(vmRun, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if c.Rootfs, err = open(root); err != nil {
		return nil, err
	}
	for i, b := range cfg.Binds {
		dir := filepath.Join(vmRun, "bind", strconv.Itoa(i))
		if err := mount9p(b.Tag, dir, b.Writable); err != nil {
			return nil, err
		}
		src := dir
		if b.File != "" {
			src = filepath.Join(dir, b.File)
		}
		fd, err := open(src)
		if err != nil {
			return nil, fmt.Errorf("mount source: %w", err)
		}
		c.Binds = append(c.Binds, Bind{Source: fd, Dir: b.File == "", Path: b.Path, Writable: b.Writable})
	}
	if err := setupRoot(c, moveRoot); err != nil {
		kept.Close()
		return nil, err
	}
	return kept, nil
}

// mountUpper mounts the writable disk and returns the overlay's upper and
// work directories on it, with the files every sandbox gets in /etc.
func mountUpper(cfg *VMConfig) (upper, work string, err error) {
	dev, err := findDisk(cfg.UpperSerial)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(vmRun, "upper")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_NOATIME, ""); err != nil {
		return "", "", fmt.Errorf("mounting the writable disk %s: %w", dev, err)
	}
	upper, work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work, filepath.Join(upper, "etc")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", "", err
		}
	}
	for name, content := range GeneratedEtc(cfg.Hostname) {
		if err := os.WriteFile(filepath.Join(upper, "etc", name), []byte(content), 0o644); err != nil {
			return "", "", err
		}
	}
	return upper, work, nil
}

// moveRoot makes the mount at rootfd the root, as switch_root does: the
// initial root cannot be pivoted away, so the new root is moved over it and
// entered with chroot. The initramfs stays beneath, out of reach of paths.
func moveRoot(rootfd int) error {
	if err := unix.Fchdir(rootfd); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}
