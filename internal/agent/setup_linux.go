package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// setup builds the sandbox's root from cfg and pivots into it. It runs as
// root of the sandbox's user namespace, in fresh mount, pid, network, uts
// and ipc namespaces.
func setup(cfg *Config) error { return setupRoot(cfg, pivot) }

// setupRoot builds the sandbox's root from cfg and makes it the root with
// enter (pivot in a namespace; a move over the initramfs in a VM, where
// pivot_root cannot leave the initial root).
func setupRoot(cfg *Config, enter func(rootfd int) error) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	cfg.phase("private mounts")
	rootfd, err := mountOverlay(cfg)
	if err != nil {
		return err
	}
	cfg.phase("mount overlay")
	defer unix.Close(rootfd)
	r := &rootFS{fd: rootfd}
	for _, b := range cfg.Binds {
		if err := r.bind(b); err != nil {
			return err
		}
		cfg.phase("mount bind " + b.Path)
	}
	if err := r.mountProc(); err != nil {
		return err
	}
	cfg.phase("mount proc")
	r.mountSys() // optional: some hosts forbid sysfs in a user namespace
	cfg.phase("mount sys")
	if err := r.mountDev(); err != nil {
		return err
	}
	cfg.phase("mount dev")
	if err := r.maskPaths(); err != nil {
		return err
	}
	cfg.phase("mask paths")
	if err := enter(rootfd); err != nil {
		return err
	}
	cfg.phase("pivot")
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("setting the hostname: %w", err)
		}
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	cfg.phase("hostname and lo")
	unix.Umask(0o022)
	return nil
}

// fdPath names an open descriptor so that a path-taking call acts on
// exactly it.
func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// mountOverlay mounts the layers and the writable layer at the rootfs
// directory and returns a descriptor of the new root.
func mountOverlay(cfg *Config) (int, error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("opening overlayfs: %w", err)
	}
	defer unix.Close(fsfd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return fmt.Errorf("overlayfs %s=%s: %w", key, value, err)
		}
		return nil
	}
	if len(cfg.Layers) == 0 {
		return -1, errors.New("no layers: overlayfs needs at least one lower directory")
	}
	// overlayfs lists the top layer first.
	lowers := make([]string, len(cfg.Layers))
	for i, fd := range cfg.Layers {
		lowers[len(lowers)-1-i] = fdPath(fd)
	}
	// "lowerdir+" (Linux 6.8) adds layers one at a time, with no limit
	// on their number; older kernels take them all in one option (before
	// 6.5 overlayfs parses its options only at create time, so trying
	// "lowerdir+" there poisons the context: ask the kernel's version).
	if lowerdirPlus() {
		for _, l := range lowers {
			if err := set("lowerdir+", l); err != nil {
				return -1, err
			}
		}
	} else if err := set("lowerdir", strings.Join(lowers, ":")); err != nil {
		return -1, err
	}
	for _, kv := range [][2]string{{"upperdir", fdPath(cfg.Upper)}, {"workdir", fdPath(cfg.Work)}} {
		if err := set(kv[0], kv[1]); err != nil {
			return -1, err
		}
	}
	if err := unix.FsconfigSetFlag(fsfd, "userxattr"); err != nil {
		return -1, fmt.Errorf("overlayfs userxattr: %w", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("creating the overlay root (%d layers): %w", len(cfg.Layers), err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("mounting the overlay root: %w", err)
	}
	if err := unix.MoveMount(mfd, "", cfg.Rootfs, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		unix.Close(mfd)
		return -1, fmt.Errorf("attaching the overlay root: %w", err)
	}
	return mfd, nil
}

// lowerdirPlus reports whether the running kernel (6.8 or later) takes
// overlayfs's "lowerdir+" option.
func lowerdirPlus() bool {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return false
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 8
}

// rootFS is the new root before the pivot. Paths inside it are resolved
// with openat2(RESOLVE_IN_ROOT), so a symlink in an image can never lead a
// mount or a created file outside the root.
type rootFS struct {
	fd int // the root of the overlay mount
}

// kind is what openIn creates when a path is missing.
type kind int

const (
	mustExist kind = iota
	makeDir
	makeFile
)

// openIn opens name inside the root as an O_PATH descriptor, creating
// missing parent directories and, per k, the last component.
func (r *rootFS) openIn(name string, k kind) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(r.fd, name, how)
	if err == nil || !errors.Is(err, unix.ENOENT) || k == mustExist {
		return fd, err
	}
	parent := filepath.Dir(filepath.Clean("/" + name))
	base := filepath.Base(name)
	pfd := r.fd
	if parent != "/" {
		if pfd, err = r.openIn(parent, makeDir); err != nil {
			return -1, err
		}
		defer unix.Close(pfd)
	}
	// The parent may be an O_PATH descriptor; reopen it as a directory.
	dfd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	switch k {
	case makeDir:
		err = unix.Mkdirat(dfd, base, 0o755)
	case makeFile:
		var f int
		f, err = unix.Openat(dfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(f)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	return unix.Openat2(r.fd, name, how)
}

// mountOn mounts onto name inside the root, creating it per k.
func (r *rootFS) mountOn(name string, k kind, source, fstype string, flags uintptr, data string) error {
	fd, err := r.openIn(name, k)
	if err != nil {
		return fmt.Errorf("preparing %s for %s: %w", name, fstype, err)
	}
	defer unix.Close(fd)
	if err := unix.Mount(source, fdPath(fd), fstype, flags, data); err != nil {
		return fmt.Errorf("mounting %s at %s: %w", fstype, name, err)
	}
	return nil
}

// bind mounts a host path (an inherited descriptor) inside the root, with
// every mount below it: nosuid and nodev, and read-only all the way down
// unless b is writable.
func (r *rootFS) bind(b Bind) error { return r.bindMount(b, true) }

// bindAlone mounts b's source mount inside the root without the mounts
// below it, restricted as bind restricts. In gVisor every source is one
// mount (its gofer shows the host's mounts below a bound directory as
// plain directories), and restricting one mount spares the walk of
// mountinfo that gVisor, without mount_setattr, needs for a tree (about a
// millisecond a bind).
func (r *rootFS) bindAlone(b Bind) error { return r.bindMount(b, false) }

// bindMount does bind's work, with the mounts below b's source when
// recursive.
func (r *rootFS) bindMount(b Bind, recursive bool) error {
	k := makeFile
	if b.Dir {
		k = makeDir
	}
	fd, err := r.openIn(b.Path, k)
	if err != nil {
		return fmt.Errorf("preparing bind mount target %s: %w", b.Path, err)
	}
	defer unix.Close(fd)
	flags := uintptr(unix.MS_BIND)
	if recursive {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(fdPath(b.Source), fdPath(fd), "", flags, ""); err != nil {
		return fmt.Errorf("bind mounting at %s: %w", b.Path, err)
	}
	nfd, err := r.openIn(b.Path, mustExist) // the mount now covers the old target
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	attr := uint64(readOnlyAttr)
	if b.Writable {
		attr = writableAttr
	}
	restrict := restrictMount
	if recursive {
		restrict = restrictTree
	}
	if err := restrict(nfd, attr); err != nil {
		return fmt.Errorf("restricting the mount at %s: %w", b.Path, err)
	}
	return nil
}

func (r *rootFS) mountProc() error {
	return r.mountOn("proc", makeDir, "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

func (r *rootFS) mountSys() {
	r.mountOn("sys", makeDir, "sysfs", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// maskedPaths are hidden from the sandbox, as runc hides them: files show
// the null device, directories an empty read-only tmpfs.
var maskedPaths = []string{
	"proc/acpi", "proc/asound", "proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list",
	"proc/timer_stats", "proc/sched_debug", "proc/scsi", "sys/firmware", "sys/devices/virtual/powercap",
}

// readonlyPaths are made read-only, as runc makes them.
var readonlyPaths = []string{"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"}

// maskPaths hides maskedPaths and freezes readonlyPaths. Paths the kernel
// does not have are skipped.
func (r *rootFS) maskPaths() error {
	for _, p := range maskedPaths {
		fd, err := r.openIn(p, mustExist)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		target := fdPath(fd)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=555")
		} else if err == nil {
			err = unix.Mount("/dev/null", target, "", unix.MS_BIND, "")
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("masking /%s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		fd, err := r.openIn(p, mustExist)
		if err != nil {
			continue
		}
		target := fdPath(fd)
		err = unix.Mount(target, target, "", unix.MS_BIND|unix.MS_REC, "")
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("making /%s read-only: %w", p, err)
		}
		// The bind is a new mount: remount it, through a fresh descriptor.
		fd, err = r.openIn(p, mustExist)
		if err != nil {
			return err
		}
		err = unix.Mount("", fdPath(fd), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("making /%s read-only: %w", p, err)
		}
	}
	return nil
}

// devNodes are the host device nodes bound into the sandbox's /dev.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

// devLinks are the symlinks of the sandbox's /dev.
var devLinks = [][2]string{
	{"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
}

// mountDev makes a minimal /dev: a tmpfs with the harmless device nodes of
// the host bound in, a private devpts, /dev/shm and the usual links.
func (r *rootFS) mountDev() error {
	if err := r.mountOn("dev", makeDir, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, n := range devNodes {
		if err := r.mountOn("dev/"+n, makeFile, "/dev/"+n, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	if err := r.mountOn("dev/pts", makeDir, "devpts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := r.mountOn("dev/shm", makeDir, "shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=65536k"); err != nil {
		return err
	}
	dev, err := r.openIn("dev", mustExist) // our fresh tmpfs: no symlink can be in it yet
	if err != nil {
		return err
	}
	defer unix.Close(dev)
	for _, l := range devLinks {
		if err := unix.Symlinkat(l[1], dev, l[0]); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[0], err)
		}
	}
	return nil
}

// pivot makes the mount at rootfd the root and detaches the old one.
func pivot(rootfd int) error {
	if err := unix.Fchdir(rootfd); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

// loopbackUp sets the lo interface up.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
