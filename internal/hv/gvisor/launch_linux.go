package gvisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/agent"
	"golang.org/x/sys/unix"
)

// launchEnv marks the host binary re-executed as a sandbox's launcher; its
// value is the plan, as JSON.
const launchEnv = "CC_GVISOR_LAUNCH"

// The launcher's descriptors: the two sockets passed on to the agent, and
// the socket on which the host, once it has put the launcher in its
// cgroup, sends the host files the sandbox needs (see sendFiles).
const (
	fdChannel = agent.GVisorFdChannel
	fdFrames  = agent.GVisorFdFrames
	fdFiles   = 5
)

// runscChannel and runscFrames are where the launcher hands runsc the two
// sockets, to pass on to the agent as fdChannel and fdFrames: high
// numbers, so that runsc's sandbox process, forked while runsc holds them,
// starts with a descriptor table of 256 slots. The sandbox process moves
// its standard streams to descriptors 253-255 early in its start; growing
// a smaller table there, with its threads sharing it, waits for an RCU
// grace period (5-15 ms on these machines) on the start's critical path.
const (
	runscChannel = 200
	runscFrames  = 201
)

// filesPerMessage bounds the descriptors of one message on fdFiles.
const filesPerMessage = 64

// work is the launcher's workspace: a tmpfs over /tmp of its own mount
// namespace, where runsc, in the same namespace, finds it by path (the
// host's paths to the layers may pass directories the sandbox's ids cannot
// enter; descriptors reach them).
const work = "/run/cc-gvisor"

// plan is what the host tells its launcher.
type plan struct {
	Runsc string // the binary to exec
	Argv0 string // its argv[0]
	// Self says runsc is linked into this program: the launcher runs it
	// in-process (see RunLauncher) rather than executing it.
	Self  bool
	Flags []string // runsc's global flags
	ID    string   // the container's id
	// Layers is the number of read-only layers. The host sends the files
	// on fdFiles in this order: the agent's binary, the layers (lowest
	// first), the bind sources.
	Layers int
	Binds  []planBind
	// Libs are host directories a dynamically linked agent needs (its
	// interpreter's and its libraries'), mounted read-only at the same
	// paths in the agent root.
	Libs     []string
	Hostname string
	Agent    agent.GVisorConfig

	platform string // the host's: the platform of Flags
}

// planBind is a bind mount's source.
type planBind struct {
	Dir bool
}

func init() {
	js := os.Getenv(launchEnv)
	if js == "" {
		return
	}
	var p plan
	if json.Unmarshal([]byte(js), &p) == nil && p.Self {
		// Only a program that imports the gvisor package runs runsc
		// itself, and that package's init runs the launcher
		// (RunLauncher).
		return
	}
	os.Exit(launch(js, nil))
}

// RunLauncher runs the launcher of a program that links runsc in (the
// opt-in package gvisor, whose init calls it with runsc's main function),
// when this process is one; otherwise it returns. The launcher then
// becomes runsc by calling runsc rather than executing this binary again,
// which spares a sandbox's start a process image and the initialisation
// of a hundred-megabyte program (3-4 ms).
func RunLauncher(runsc func()) {
	if p := os.Getenv(launchEnv); p != "" {
		os.Exit(launch(p, runsc))
	}
}

// launch runs the launcher: it waits for the host's release, prepares the
// workspace and becomes runsc, by calling runsc when it is not nil and by
// executing plan.Runsc otherwise. It returns only on failure.
func launch(js string, runsc func()) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "cc gvisor launcher: %v\n", err)
		return 1
	}
	var p plan
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		return fail(fmt.Errorf("decoding the plan: %w", err))
	}
	fds, err := receiveFiles(fdFiles)
	if err != nil {
		return fail(fmt.Errorf("receiving the host's files: %w", err))
	}
	if len(fds) != 1+p.Layers+len(p.Binds) {
		return fail(fmt.Errorf("received %d files, want %d", len(fds), 1+p.Layers+len(p.Binds)))
	}
	if err := prepare(&p, fds); err != nil {
		return fail(err)
	}
	// Nothing but the two sockets goes on to runsc.
	unix.CloseRange(fdChannel, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	for from, to := range map[int]int{fdChannel: runscChannel, fdFrames: runscFrames} {
		if err := unix.Dup3(from, to, 0); err != nil {
			return fail(fmt.Errorf("moving descriptor %d to %d: %w", from, to, err))
		}
	}
	args := append([]string{p.Argv0}, p.Flags...)
	args = append(args, "run", "--bundle="+filepath.Join(work, "bundle"),
		fmt.Sprintf("--pass-fd=%d:%d", runscChannel, fdChannel), fmt.Sprintf("--pass-fd=%d:%d", runscFrames, fdFrames), p.ID)
	const path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if runsc != nil && p.Self {
		// As if executed: runsc's command line and environment, and no
		// descriptor but the sockets will reach what it starts (the rest
		// are close-on-exec).
		os.Args = args
		os.Clearenv()
		os.Setenv("PATH", path)
		runsc()
		return 0
	}
	return fail(fmt.Errorf("executing runsc %s: %w", p.Runsc, unix.Exec(p.Runsc, args, []string{"PATH=" + path})))
}

// receiveFiles reads the descriptors the host sends on fd, until it
// closes its end.
func receiveFiles(fd int) ([]int, error) {
	var fds []int
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(filesPerMessage*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return fds, nil
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for i := range msgs {
			got, err := unix.ParseUnixRights(&msgs[i])
			if err != nil {
				return nil, err
			}
			fds = append(fds, got...)
		}
	}
}

// fdPath names a received descriptor for calls that take paths.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// prepare builds the workspace from the plan and the host's files (fds,
// in the order plan.Layers documents): the agent root, the image, the
// binds and the OCI bundle.
func prepare(p *plan, fds []int) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	// The host's /proc is of the host's pid namespace, where runsc cannot
	// re-execute itself through /proc/self/exe: mount ours.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mounting the workspace: %w", err)
	}
	root := filepath.Join(work, "root")
	dirs := []string{"bundle", "state", "lower", "root/proc", "root/dev", "root/sys", "root/tmp"}
	for _, d := range []string{agent.GVisorLower, agent.GVisorRW, agent.GVisorNewRoot, agent.GVisorCgroup} {
		dirs = append(dirs, "root"+d)
	}
	for i, b := range p.Binds {
		if b.Dir {
			dirs = append(dirs, "bind/"+strconv.Itoa(i), "root"+agent.GVisorBindDir(i))
		}
	}
	for _, l := range p.Libs {
		dirs = append(dirs, "root"+l)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	cfg, err := json.Marshal(&p.Agent)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, agent.GVisorConfigFile), cfg, 0o444); err != nil {
		return err
	}
	if err := bindFile(fdPath(fds[0]), filepath.Join(root, agent.GVisorAgent), true); err != nil {
		return fmt.Errorf("mounting the agent: %w", err)
	}
	if err := mountImage(filepath.Join(work, "lower"), fds[1:1+p.Layers]); err != nil {
		return err
	}
	for i, b := range p.Binds {
		src, dst := fdPath(fds[1+p.Layers+i]), filepath.Join(work, "bind", strconv.Itoa(i))
		var err error
		if b.Dir {
			err = unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, "")
		} else if err = touch(filepath.Join(root, agent.GVisorBindDir(i))); err == nil {
			err = bindFile(src, dst, false)
		}
		if err != nil {
			return fmt.Errorf("mount source %d: %w", i, err)
		}
	}
	spec, err := json.Marshal(bundleSpec(p, root))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "bundle", "config.json"), spec, 0o444)
}

// touch creates an empty file as a mount point.
func touch(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o444)
	if err != nil {
		return err
	}
	return f.Close()
}

// bindFile bind-mounts the file src at dst, created empty, read-only if
// asked.
func bindFile(src, dst string, readOnly bool) error {
	if err := touch(dst); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s: %w", src, err)
	}
	if !readOnly {
		return nil
	}
	if err := remountReadOnly(dst); err != nil {
		return fmt.Errorf("making %s read-only: %w", dst, err)
	}
	return nil
}

// remountReadOnly makes the bind mount at dst read-only, keeping the flags
// the kernel locked on it.
func remountReadOnly(dst string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return err
	}
	// statfs's ST_ flags are MS_ flags but for ST_RELATIME.
	var locked uintptr
	for st2ms, ms := range map[int64]uintptr{unix.ST_NOSUID: unix.MS_NOSUID, unix.ST_NODEV: unix.MS_NODEV,
		unix.ST_NOEXEC: unix.MS_NOEXEC, unix.ST_NOATIME: unix.MS_NOATIME, unix.ST_NODIRATIME: unix.MS_NODIRATIME,
		unix.ST_RELATIME: unix.MS_RELATIME} {
		if st.Flags&st2ms != 0 {
			locked |= ms
		}
	}
	return unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|locked, "")
}

// mountImage makes dir the image: empty without layers, the layer itself
// when there is one, else the layers merged by overlayfs (which takes the
// top layer first), read-only in every case.
func mountImage(dir string, layers []int) error {
	switch len(layers) {
	case 0:
		return nil
	case 1:
		if err := unix.Mount(fdPath(layers[0]), dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mounting the layer: %w", err)
		}
		return remountReadOnly(dir)
	}
	paths := make([]string, len(layers))
	for i, fd := range layers {
		paths[len(paths)-1-i] = fdPath(fd)
	}
	data := "lowerdir=" + strings.Join(paths, ":") + ",userxattr"
	if len(data) >= os.Getpagesize() {
		return errors.New("too many layers for one overlayfs mount")
	}
	if err := unix.Mount("overlay", dir, "overlay", unix.MS_RDONLY, data); err != nil {
		return fmt.Errorf("merging %d layers: %w", len(layers), err)
	}
	return nil
}
