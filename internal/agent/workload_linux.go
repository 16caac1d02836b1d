package agent

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// fork runs fork, which forks one command, so that the command is born
// in the workload's cgroups (see Workload): on a thread that joined them
// alone, and that goes back to the agent's right after. A nil Workload
// forks where the agent is.
func (w *Workload) fork(fork func() (int, error)) (int, error) {
	if w == nil || len(w.Join) == 0 {
		return fork()
	}
	runtime.LockOSThread()
	if err := joinEach(w.Join); err != nil {
		if joinEach(w.Back) == nil {
			runtime.UnlockOSThread()
		}
		return 0, fmt.Errorf("starting the command in the sandbox's workload cgroup: %w", err)
	}
	pid, err := fork()
	if joinEach(w.Back) == nil {
		runtime.UnlockOSThread()
	}
	// Otherwise the thread stays locked to this goroutine and ends with
	// it: no other goroutine of the agent runs on it in the meantime.
	return pid, err
}

// joinEach moves the calling thread into the cgroup of each file in fds
// (see Workload.Join; "0" is the writing thread itself).
func joinEach(fds []int) error {
	for _, fd := range fds {
		if _, err := unix.Pwrite(fd, []byte("0"), 0); err != nil {
			return err
		}
	}
	return nil
}

// limitError says which of the sandbox's limits made a command's start
// fail with errno, when one did: a refused fork under the pids limit, no
// memory under the memory limit.
func (w *Workload) limitError(errno syscall.Errno) error {
	switch {
	case w == nil:
		return errno
	case w.PidsMax > 0 && errors.Is(errno, syscall.EAGAIN):
		return fmt.Errorf("the sandbox's pids limit (WithPidsLimit(%d)) refused the fork: %w", w.PidsMax, errno)
	case w.MemoryMB > 0 && errors.Is(errno, syscall.ENOMEM):
		return fmt.Errorf("the sandbox is at its memory limit (WithMemoryMB(%d)): %w", w.MemoryMB, errno)
	}
	return errno
}
