package hv

import (
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// Proc is the life of a sandbox that is one host process (the namespace
// backend's agent, the VM backend's QEMU), which its backend embeds: it
// waits for the process, ends it once (Kill), bounds the wait for the end
// (Stop), and tells an end the host asked for from one the sandbox met on
// its own (Ended), so that Err reports only the latter. Make it with
// NewProc.
//
// A backend follows the process one of two ways. Watch waits for it on a
// goroutine blocked in the kernel, which holds a thread and the process's
// descriptor for the sandbox's life: fine for the few sandboxes of a
// heavy backend. Adopt holds neither: the backend learns that the process
// is ending another way (a hang-up on a socket only the process holds)
// and then calls Reap, which waits for it by pid.
type Proc struct {
	what     string    // the process, in errors: "agent", "QEMU"
	cmd      *exec.Cmd // set by Watch
	pid      int       // set by Watch or Adopt; 0 before
	mu       sync.Mutex
	reaped   bool // guarded by mu: Adopt's pid has been waited for and may be reused
	done     chan struct{}
	waitErr  error // set before done closes
	stopOnce sync.Once
	stopping chan struct{} // closed by Kill before it kills
}

// NewProc returns the life of a sandbox process, named what in errors.
func NewProc(what string) *Proc {
	return &Proc{what: what, done: make(chan struct{}), stopping: make(chan struct{})}
}

// Watch waits for cmd, which has started, on a goroutine of its own; once
// it has exited and cleanup (which may be nil) has run, Done closes.
func (p *Proc) Watch(cmd *exec.Cmd, cleanup func()) {
	p.cmd, p.pid = cmd, cmd.Process.Pid
	go func() {
		p.waitErr = cmd.Wait()
		if cleanup != nil {
			cleanup()
		}
		close(p.done)
	}()
}

// Done returns a channel closed once the process has ended and been
// cleaned up after.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr returns what waiting for the process returned; it is valid once
// Done has closed.
func (p *Proc) ExitErr() error { return p.waitErr }

// Ended reports whether the sandbox ended on its own: Done has closed, and
// neither Kill nor Stop ended it.
func (p *Proc) Ended() bool {
	select {
	case <-p.done:
	default:
		return false
	}
	select {
	case <-p.stopping:
		return false
	default:
		return true
	}
}

// Kill ends the process, once: before runs first (closing the
// connections the sandbox's calls wait on), after right after the signal.
// Either may be nil. Kill before Watch or Adopt does nothing.
func (p *Proc) Kill(before, after func()) {
	if p.pid == 0 {
		return
	}
	p.stopOnce.Do(func() {
		close(p.stopping)
		if before != nil {
			before()
		}
		p.kill()
		if after != nil {
			after()
		}
	})
}

// Stop is Kill, then a wait of at most StopGrace for the end; it returns
// an error naming sandbox id when the process outlives it.
func (p *Proc) Stop(id string, before, after func()) error {
	if p.pid == 0 {
		return nil
	}
	p.Kill(before, after)
	select {
	case <-p.done:
		return nil
	case <-time.After(StopGrace):
		return fmt.Errorf("sandbox %s: %s pid %d did not exit after SIGKILL", id, p.what, p.pid)
	}
}

// WithPid calls f with the process's pid and returns what f returns. After
// Adopt it holds the pid as the process's own while f runs (Reap cannot
// give it back meanwhile), so that what f opens under /proc/<pid> is the
// sandbox's and not a newcomer's. It returns an error naming the process
// if it has already ended and been waited for.
func (p *Proc) WithPid(f func(pid int) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ended := p.reaped
	if p.cmd != nil {
		select {
		case <-p.done:
			ended = true
		default:
		}
	}
	if p.pid == 0 || ended {
		return fmt.Errorf("the %s is not running", p.what)
	}
	return f(p.pid)
}

// kill sends SIGKILL to the process: through os.Process after Watch, by
// pid after Adopt, and then only while the pid is still the process's
// (not yet reaped).
func (p *Proc) kill() {
	if p.cmd != nil {
		p.cmd.Process.Kill()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		killPid(p.pid)
	}
}
