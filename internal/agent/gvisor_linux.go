package agent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// gvisorCgroupName is the pids cgroup the agent and everything it starts
// run in, under the hierarchy it mounts at GVisorCgroup.
const gvisorCgroupName = "sandbox"

// runGVisor is the agent's life as the first process of a gVisor sandbox
// (internal/hv/gvisor): it reads its GVisorConfig, builds the sandbox's
// root (the host's read-only image under an overlay whose writable layer
// is a tmpfs of gVisor's) and pivots into it, answers on its channel, and
// serves the host over a yamux session there until the host goes.
func runGVisor() error {
	if err := newSession(); err != nil {
		return err
	}
	if err := closeInherited(GVisorFdChannel, GVisorFdFrames); err != nil {
		return err
	}
	os.Unsetenv(EnvMarker)
	os.Unsetenv("LD_LIBRARY_PATH") // set for a dynamically linked agent only
	for _, fd := range []int{GVisorFdChannel, GVisorFdFrames} {
		unix.CloseOnExec(fd) // never leak into commands
	}
	channel := os.NewFile(GVisorFdChannel, "channel")
	defer channel.Close()
	fail := func(err error) error {
		fmt.Fprintf(channel, "%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return err
	}
	cfg, err := readGVisorConfig(GVisorConfigFile)
	if err != nil {
		return fail(fmt.Errorf("reading the configuration: %w", err))
	}
	tun, tunErr := openTunPath() // before the pivot leaves gVisor's /dev behind
	upper, err := buildGVisorRoot(cfg)
	if err != nil {
		return fail(err)
	}
	c := &Config{Hostname: cfg.Hostname, SingleID: cfg.SingleID, Unconfined: cfg.Unconfined, NoFile: cfg.NoFile}
	caps, err := confine(c)
	if err != nil {
		upper.Close()
		return fail(err)
	}
	a, err := newAgent(c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		upper.Close()
		return fail(err)
	}
	a.reaper.caps = caps
	a.upper = upper
	a.tun, a.tunErr = tun, tunErr
	a.frames = newFrameLink(os.NewFile(GVisorFdFrames, "frames"), a.log)
	defer a.frames.close()
	return a.serveSession(channel, "gvisor agent")
}

// buildGVisorRoot makes the sandbox's root from what the host put in the
// agent's first root, and pivots into it. It returns the writable layer's
// directory, which the new root no longer reaches, for snapshots.
func buildGVisorRoot(cfg *GVisorConfig) (*os.File, error) {
	opts := "mode=0755"
	if cfg.DiskMB > 0 {
		opts += ",size=" + strconv.FormatUint(cfg.DiskMB, 10) + "m"
	}
	if err := unix.Mount("tmpfs", GVisorRW, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return nil, fmt.Errorf("mounting the writable layer: %w", err)
	}
	upper, work := filepath.Join(GVisorRW, "upper"), filepath.Join(GVisorRW, "work")
	for _, d := range []string{upper, work, filepath.Join(upper, "etc")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	for name, content := range GeneratedEtc(cfg.Hostname) {
		if err := os.WriteFile(filepath.Join(upper, "etc", name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	data := "lowerdir=" + GVisorLower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", GVisorNewRoot, "overlay", 0, data); err != nil {
		return nil, fmt.Errorf("mounting the root overlay: %w", err)
	}
	kept, err := os.OpenFile(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := enterGVisorRoot(cfg); err != nil {
		kept.Close()
		return nil, err
	}
	return kept, nil
}

// enterGVisorRoot mounts the binds and the kernel's file systems in the new
// root, confines the sandbox's tasks to the pids limit, and pivots.
func enterGVisorRoot(cfg *GVisorConfig) error {
	rootfd, err := unix.Open(GVisorNewRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the new root: %w", err)
	}
	defer unix.Close(rootfd)
	r := &rootFS{fd: rootfd}
	for _, b := range cfg.Binds {
		src, err := unix.Open(GVisorBindDir(b.Index), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("mount source of %s: %w", b.Path, err)
		}
		err = r.bind(Bind{Source: src, Dir: b.Dir, Path: b.Path, Writable: b.Writable})
		unix.Close(src)
		if err != nil {
			return err
		}
	}
	if err := r.mountProc(); err != nil {
		return err
	}
	r.mountSys()
	if err := r.mountDev(); err != nil {
		return err
	}
	if err := r.maskPaths(); err != nil {
		return err
	}
	if cfg.PidsMax > 0 {
		if err := limitTasks(cfg.PidsMax); err != nil {
			return err
		}
	}
	if err := pivot(rootfd); err != nil {
		return err
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("setting the hostname: %w", err)
		}
	}
	unix.Umask(0o022)
	return nil
}

// limitTasks mounts gVisor's pids controller at GVisorCgroup, which the
// pivot then leaves out of every path's reach, and moves the agent, and so
// everything it will start, into a cgroup of at most max tasks.
func limitTasks(max int64) error {
	if err := unix.Mount("cgroup", GVisorCgroup, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "pids"); err != nil {
		return fmt.Errorf("pids limit: mounting gVisor's cgroup pids controller: %w", err)
	}
	dir := filepath.Join(GVisorCgroup, gvisorCgroupName)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("pids limit: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(max, 10)), 0); err != nil {
		return fmt.Errorf("pids limit: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("pids limit: joining the cgroup: %w", err)
	}
	return nil
}
