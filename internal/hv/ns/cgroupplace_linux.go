package ns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/ccsandbox/sandbox/internal/agent"
	"github.com/ccsandbox/sandbox/internal/hv/cgroupdir"
	"golang.org/x/sys/unix"
)

// startAgent starts the command newCmd returns so that the agent is born
// in the sandbox's cgroups (see the layout in cgroup_linux.go): into the
// v2 cgroup with CLONE_INTO_CGROUP, and into the v1 ones by forking on a
// thread that joined them alone. Where clone3 or CLONE_INTO_CGROUP is
// refused (before Linux 5.7, or under a seccomp filter such as Docker's),
// it starts the agent without it and moves it. With owner 0 or more, the
// forking thread acts as that uid meanwhile, which owns the agent's user
// namespace (see owner_linux.go).
func (cg *cgroup) startAgent(newCmd func() *exec.Cmd, owner int) (*exec.Cmd, error) {
	cmd := newCmd()
	if cg.v2Top == "" {
		return cmd, cg.startOnThread(cmd, owner)
	}
	fd, err := unix.Open(cg.v2Top, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: cg.v2Top, Err: err}
	}
	defer unix.Close(fd)
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	err = cg.startOnThread(cmd, owner)
	if err == nil || !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.E2BIG) {
		return cmd, err
	}
	cmd = newCmd()
	if err := cg.startOnThread(cmd, owner); err != nil {
		return nil, err
	}
	if err := cgroupdir.WriteFile(cg.v2Top, "cgroup.procs", strconv.Itoa(cmd.Process.Pid)); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("moving the agent into its cgroup: %w", err)
	}
	return cmd, nil
}

// startOnThread starts cmd from a thread that joined the sandbox's v1 cgroups
// and, with owner 0 or more, acts as that uid, and that goes back to this
// process's own cgroups and uid before any other goroutine runs on it. It
// ends the thread, and the agent with it (Pdeathsig acts when the forking
// thread ends), when it cannot go back. Where the thread cannot act as
// owner (a host program without CAP_SETPCAP), the agent's user namespace
// is this program's.
func (cg *cgroup) startOnThread(cmd *exec.Cmd, owner int) error {
	if len(cg.v1Top) == 0 && owner < 0 {
		return cmd.Start()
	}
	var join, back []*os.File
	defer func() {
		for _, f := range append(join, back...) {
			f.Close()
		}
	}()
	for _, top := range cg.v1Top {
		f, err := openTasks(top)
		if err != nil {
			return fmt.Errorf("the sandbox's cgroup: %w", err)
		}
		join = append(join, f)
		if f, err = openTasks(filepath.Dir(top)); err != nil {
			return fmt.Errorf("this process's cgroup: %w", err)
		}
		back = append(back, f)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var err error
		for _, f := range join {
			if err = joinTasks(f); err != nil {
				break
			}
		}
		// After the joins: v1 lets a thread move itself only as root.
		undo := func() error { return nil }
		if owner >= 0 && err == nil {
			u, oerr := becomeOwner(owner)
			if errors.Is(oerr, errThreadChanged) {
				errc <- oerr
				return // the thread ends with the goroutine, still locked
			}
			if oerr == nil {
				undo = u
			}
		}
		if err == nil {
			err = cmd.Start()
		}
		if uerr := undo(); uerr != nil {
			if cmd.Process != nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
			errc <- fmt.Errorf("%w: %v", errThreadChanged, uerr)
			return // the thread ends with the goroutine, still locked
		}
		for _, f := range back {
			if berr := joinTasks(f); berr != nil {
				if cmd.Process != nil {
					cmd.Process.Kill()
					cmd.Wait()
				}
				errc <- berr
				return // the thread ends with the goroutine, still locked
			}
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// workload returns what the agent needs to start commands in the
// workload's cgroups, with the files it names (add hands each to the
// caller, who sends and then closes them), or nil when the sandbox has no
// limits. The files are opened here: the kernel checks a write to them
// against whoever opened them, not against the sandbox's root that writes.
func (cg *cgroup) workload(add func(*os.File) int) (*agent.Workload, error) {
	var work, back []string // a thread's way into each workload, and back
	for _, dir := range cg.v1Workload {
		work = append(work, filepath.Join(dir, "tasks"))
		back = append(back, filepath.Join(filepath.Dir(dir), "tasks"))
	}
	if cg.v2Workload != "" {
		work = append(work, filepath.Join(cg.v2Workload, "cgroup.threads"))
		back = append(back, filepath.Join(cg.v2Top, "cgroup.threads"))
	}
	if len(work) == 0 {
		return nil, nil
	}
	w := &agent.Workload{PidsMax: cg.cfg.PidsMax, MemoryMB: cg.cfg.MemoryMB}
	open := func(p string) (int, error) {
		f, err := os.OpenFile(p, os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		return add(f), nil
	}
	for i := range work {
		j, err := open(work[i])
		if err != nil {
			return nil, err
		}
		b, err := open(back[i])
		if err != nil {
			return nil, err
		}
		w.Join, w.Back = append(w.Join, j), append(w.Back, b)
	}
	return w, nil
}
