package hv

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Adopt takes over cmd, which has started, for a backend that calls Reap
// once it knows the process is ending: cmd.Process is released (its
// pidfd closed), and the process is followed by its pid, which stays its
// own until Reap has waited for it. An adopted sandbox holds no thread
// and no descriptor of its own here.
func (p *Proc) Adopt(cmd *exec.Cmd) {
	p.pid = cmd.Process.Pid
	cmd.Process.Release()
}

// Reap waits for the adopted process to exit, reaps it, runs cleanup
// (which may be nil) and closes Done. It blocks while the process runs:
// call it once the process is known to be ending (or killed). Call it
// once, after Adopt.
func (p *Proc) Reap(cleanup func()) {
	// Wait without reaping, so that Kill never signals a reused pid: it
	// checks reaped, set here before the pid is given back.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.mu.Lock()
	p.reaped = true
	p.mu.Unlock()
	var ws unix.WaitStatus
	var err error
	for {
		_, err = unix.Wait4(p.pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case err != nil:
		p.waitErr = fmt.Errorf("waiting for %s pid %d: %w", p.what, p.pid, err)
	case ws.Signaled():
		p.waitErr = fmt.Errorf("signal: %v", ws.Signal())
	case ws.ExitStatus() != 0:
		p.waitErr = fmt.Errorf("exit status %d", ws.ExitStatus())
	}
	if cleanup != nil {
		cleanup()
	}
	close(p.done)
}

// killPid sends SIGKILL to pid.
func killPid(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
