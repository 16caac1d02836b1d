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

// gvisorCgroupName is the pids cgroup the sandbox's commands and
// everything they start run in, under the hierarchy the agent mounts at
// GVisorCgroup.
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
	held := holdSignalsEarly()
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
	cut := hardenEarly(cfg.Unconfined)
	upper, w, err := buildGVisorRoot(cfg)
	h := <-cut
	if err == nil {
		err = h.err
	}
	if err == nil {
		err = limitOpenFiles(cfg.NoFile)
	}
	if err != nil {
		if upper != nil {
			upper.Close()
		}
		return fail(err)
	}
	c := &Config{Hostname: cfg.Hostname, SingleID: cfg.SingleID, Unconfined: cfg.Unconfined, NoFile: cfg.NoFile, Workload: w}
	<-held // before the sandbox can run anything that signals the agent
	caps := h.caps
	a, err := newAgent(c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		upper.Close()
		return fail(err)
	}
	// Asked here, on the main thread, which no filter binds: the gVisor
	// filter refuses pidfd_open of process 1, the agent's own pid, with
	// which the check is made.
	pidfdsWork()
	a.reaper.caps = caps
	a.upper = upper
	a.tun, a.tunErr = tun, tunErr
	a.frames = newFrameLink(os.NewFile(GVisorFdFrames, "frames"), a.log)
	defer a.frames.close()
	return a.serveSession(channel, "gvisor agent")
}

// buildGVisorRoot makes the sandbox's root from what the host put in the
// agent's first root, and pivots into it. It returns the writable layer's
// directory, which the new root no longer reaches, for snapshots, and the
// workload's cgroup under a pids limit (nil without one).
func buildGVisorRoot(cfg *GVisorConfig) (*os.File, *Workload, error) {
	opts := "mode=0755"
	if cfg.DiskMB > 0 {
		opts += ",size=" + strconv.FormatUint(cfg.DiskMB, 10) + "m"
	}
	if err := unix.Mount("tmpfs", GVisorRW, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return nil, nil, fmt.Errorf("mounting the writable layer: %w", err)
	}
	upper, work := filepath.Join(GVisorRW, "upper"), filepath.Join(GVisorRW, "work")
	for _, d := range []string{upper, work, filepath.Join(upper, "etc")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, nil, err
		}
	}
	for name, content := range GeneratedEtc(cfg.Hostname) {
		if err := os.WriteFile(filepath.Join(upper, "etc", name), []byte(content), 0o644); err != nil {
			return nil, nil, err
		}
	}
	data := "lowerdir=" + GVisorLower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", GVisorNewRoot, "overlay", 0, data); err != nil {
		return nil, nil, fmt.Errorf("mounting the root overlay: %w", err)
	}
	kept, err := os.OpenFile(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	w, err := enterGVisorRoot(cfg)
	if err != nil {
		kept.Close()
		return nil, nil, err
	}
	return kept, w, nil
}

// enterGVisorRoot mounts the binds and the kernel's file systems in the new
// root, makes the workload's cgroup of the pids limit, and pivots.
func enterGVisorRoot(cfg *GVisorConfig) (*Workload, error) {
	rootfd, err := unix.Open(GVisorNewRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the new root: %w", err)
	}
	defer unix.Close(rootfd)
	r := &rootFS{fd: rootfd}
	for _, b := range cfg.Binds {
		src, err := unix.Open(GVisorBindDir(b.Index), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("mount source of %s: %w", b.Path, err)
		}
		err = r.bindAlone(Bind{Source: src, Dir: b.Dir, Path: b.Path, Writable: b.Writable})
		unix.Close(src)
		if err != nil {
			return nil, err
		}
	}
	if err := r.mountProc(); err != nil {
		return nil, err
	}
	r.mountSys()
	if err := r.mountDev(); err != nil {
		return nil, err
	}
	if err := r.maskPaths(); err != nil {
		return nil, err
	}
	var work *Workload
	if cfg.PidsMax > 0 {
		if work, err = limitTasks(cfg.PidsMax); err != nil {
			return nil, err
		}
	}
	if err := pivot(rootfd); err != nil {
		return nil, err
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return nil, fmt.Errorf("setting the hostname: %w", err)
		}
	}
	unix.Umask(0o022)
	return work, nil
}

// limitTasks mounts gVisor's cgroup pids controller at GVisorCgroup,
// which the pivot then leaves out of every path's reach, and makes the
// cgroup of at most max tasks (threads count) where every command is born
// (see Workload). The agent stays in the root cgroup, out of the limit: a
// fork bomb exhausts the commands' budget, never the agent's threads (the
// Go runtime dies when it cannot start one).
//
// The pids controller must be gVisor's only v1 hierarchy (runsc
// --in-sandbox-cgroup=v2 mounts none of its own): gVisor checks a fork
// against the limit only when the pids cgroup comes first among the forking
// task's v1 cgroups, iterated in map order (Task.chargeLocked returns after
// the first), so with runsc's seven v1 hierarchies most forks went in
// unchecked and a burst passed pids.max (TestGVisorLimits/pids saw 41
// sleeps under a limit of 32).
func limitTasks(max int64) (*Workload, error) {
	if err := releaseV2Pids(); err != nil {
		return nil, err
	}
	if err := unix.Mount("cgroup", GVisorCgroup, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "pids"); err != nil {
		return nil, fmt.Errorf("pids limit: mounting gVisor's cgroup pids controller: %w", err)
	}
	if err := onlyPidsHierarchy(); err != nil {
		return nil, err
	}
	dir := filepath.Join(GVisorCgroup, gvisorCgroupName)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pids limit: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(max, 10)), 0); err != nil {
		return nil, fmt.Errorf("pids limit: %w", err)
	}
	w := &Workload{PidsMax: max}
	for _, d := range []string{dir, GVisorCgroup} {
		fd, err := unix.Open(filepath.Join(d, "tasks"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, fd := range w.Join {
				unix.Close(fd)
			}
			return nil, fmt.Errorf("pids limit: %w", err)
		}
		if d == dir {
			w.Join = append(w.Join, fd)
		} else {
			w.Back = append(w.Back, fd)
		}
	}
	return w, nil
}

// releaseV2Pids takes the pids controller out of gVisor's cgroup v2 root,
// where runsc --in-sandbox-cgroup=v2 enables it, so that a v1 hierarchy can
// have it.
func releaseV2Pids() error {
	if err := unix.Mount("cgroup2", GVisorCgroup, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("pids limit: mounting gVisor's cgroup2: %w", err)
	}
	err := os.WriteFile(filepath.Join(GVisorCgroup, "cgroup.subtree_control"), []byte("-pids"), 0)
	if uerr := unix.Unmount(GVisorCgroup, 0); err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("pids limit: releasing the pids controller of gVisor's cgroup2: %w", err)
	}
	return nil
}

// onlyPidsHierarchy checks that the agent is in no v1 cgroup hierarchy but
// the pids controller's (see limitTasks).
func onlyPidsHierarchy() error {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return fmt.Errorf("pids limit: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-ID:controllers:path; cgroup v2's line has no controllers.
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] != "" && f[1] != "pids" {
			return fmt.Errorf("pids limit: gVisor has the v1 cgroup hierarchy %q besides pids, and then checks few forks against pids.max (runsc needs --in-sandbox-cgroup=v2)", f[1])
		}
	}
	return nil
}
