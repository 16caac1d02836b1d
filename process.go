package sandbox

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Process is a process started by Cmd.Start inside a sandbox. Its Pid is as
// the sandbox sees it.
type Process struct {
	Pid int

	cmd *Cmd
}

// Signal sends sig (a syscall.Signal) to the process. It returns
// os.ErrProcessDone once the process has finished.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("sandbox: unsupported signal type %T", sig)
	}
	return p.cmd.kill(s, false)
}

// Kill kills the process with SIGKILL (its children live on, as with
// os.Process.Kill; CommandContext's default Cancel kills them all). It
// returns os.ErrProcessDone once the process has finished.
func (p *Process) Kill() error {
	return p.Signal(syscall.SIGKILL)
}

// kill signals the command's process, or with tree its process group and
// every descendant.
func (c *Cmd) kill(sig syscall.Signal, tree bool) error {
	if c.released.Load() {
		return os.ErrProcessDone // waited for: the handle is released
	}
	ctx, cancel := c.killCtx()
	defer cancel()
	err := c.inst.agent.CmdKill(ctx, c.handle, int32(sig), tree)
	if err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return os.ErrProcessDone
		}
		if aerr := c.inst.stoppedErr(err); aerr != nil {
			return os.ErrProcessDone // the sandbox, and the process with it, is gone
		}
		var ie *ipc.IPCError
		if errors.As(err, &ie) {
			return ie.Bare()
		}
		return err
	}
	return nil
}

// ProcessState describes how a process ended, as os.ProcessState does.
type ProcessState struct {
	status ipc.ExitStatus
}

// Pid returns the process id (in the sandbox) of the exited process.
func (p *ProcessState) Pid() int { return int(p.status.Pid) }

// ExitCode returns the exit code of the exited process, or -1 if it was
// killed by a signal or has not exited (including a nil ProcessState).
func (p *ProcessState) ExitCode() int {
	if p == nil {
		return -1
	}
	return int(p.status.Code)
}

// Exited reports whether the program called exit.
func (p *ProcessState) Exited() bool { return p.status.Exited }

// Success reports whether the program exited with status 0.
func (p *ProcessState) Success() bool { return p.status.Exited && p.status.Code == 0 }

// Signaled reports whether the program was killed by a signal, and Signal
// which one.
func (p *ProcessState) Signaled() bool { return p.status.Signal != 0 }

// Signal returns the signal that killed the process, or 0.
func (p *ProcessState) Signal() syscall.Signal { return syscall.Signal(p.status.Signal) }

// UserTime returns the user CPU time of the process and its children.
func (p *ProcessState) UserTime() time.Duration { return time.Duration(p.status.UserNs) }

// SystemTime returns the system CPU time of the process and its children.
func (p *ProcessState) SystemTime() time.Duration { return time.Duration(p.status.SysNs) }

// Sys returns the ipc.ExitStatus the sandbox reported.
func (p *ProcessState) Sys() any { return p.status }

// String formats the state as os.ProcessState does: "exit status 1",
// "signal: killed".
func (p *ProcessState) String() string {
	if p == nil {
		return "<nil>"
	}
	switch {
	case p.status.Exited:
		return fmt.Sprintf("exit status %d", p.status.Code)
	case p.status.Signal != 0:
		s := "signal: " + syscall.Signal(p.status.Signal).String()
		if p.status.CoreDump {
			s += " (core dumped)"
		}
		return s
	}
	return "unknown exit state"
}

// ExitError reports an unsuccessful exit by a command, as exec.ExitError
// does.
type ExitError struct {
	*ProcessState

	// Stderr holds a part of the standard error output of Cmd.Output when
	// Cmd.Stderr was nil (its first and last 32 KiB).
	Stderr []byte

	oom bool // the kernel killed it for the sandbox's memory limit
}

// Error returns the state, "exit status N" or "signal: NAME", and says
// when the kernel killed the process for the sandbox's memory limit.
func (e *ExitError) Error() string {
	if e.oom {
		return e.ProcessState.String() + " (out of memory: the sandbox's WithMemoryMB limit)"
	}
	return e.ProcessState.String()
}

// Is reports whether target is ErrOutOfMemory for a process the kernel
// killed for exceeding the sandbox's memory limit.
func (e *ExitError) Is(target error) bool { return e.oom && target == ErrOutOfMemory }
