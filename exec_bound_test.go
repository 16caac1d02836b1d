package sandbox

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWaitBoundFrozenAgent: an agent that stops answering (stopped here
// from the host, as the sandbox's own code can stop a gVisor agent) does
// not hold Wait once the command's context has ended, with a WaitDelay:
// Wait returns an error matching the context's. The agent, resumed, goes
// on serving.
func TestWaitBoundFrozenAgent(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := inst.CommandContext(ctx, "sh", "-c", "echo ready; exec sleep 1000")
			cmd.WaitDelay = 100 * time.Millisecond
			startAwaiting(t, cmd, "ready")
			pid := inst.runner.Pid()
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			resumed := false
			resume := func() {
				if !resumed {
					syscall.Kill(pid, syscall.SIGCONT)
					resumed = true
				}
			}
			defer resume()
			cancel()
			if err := cmd.Wait(); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "did not report") {
				t.Fatalf("Wait with the agent stopped: %v, want the bound's error, matching context.Canceled", err)
			}
			resume()
			if out, err := inst.Command("echo", "alive").Output(); err != nil || string(out) != "alive\n" {
				t.Fatalf("the agent after it resumed: %q %v", out, err)
			}
		})
	}
}

// TestWaitLongAfterContext: the bound on calls to the agent never turns
// a Wait that comes late (here 1.5 s after the context ended, the bound
// long gone) into an error: the process's exit is reported as exec.Cmd
// reports it.
func TestWaitLongAfterContext(t *testing.T) {
	inst := hostInstance(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := inst.CommandContext(ctx, "sh", "-c", "echo ready; exit 3")
	cmd.WaitDelay = 100 * time.Millisecond
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(out).ReadString('\n')
	cancel()
	time.Sleep(cmd.WaitDelay + cmd.agentBound() + 500*time.Millisecond) // past the bound
	var ee *ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) && !errors.Is(err, context.Canceled) {
		t.Fatalf("a late Wait: %v, want the process's exit or the context's error", err)
	} else if err != nil && strings.Contains(err.Error(), "did not report") {
		t.Fatalf("a late Wait with an answering agent: %v", err)
	}
}

// TestKillFromOutput: a Stdout writer that kills the process while Start
// is still setting up the command races nothing (as with exec.Cmd, whose
// Process is set before the copies start); the race detector checks.
func TestKillFromOutput(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := inst.CommandContext(ctx, "sh", "-c", "echo hi; exec sleep 1000")
			cmd.WaitDelay = 100 * time.Millisecond
			killed := false
			cmd.Stdout = writerFunc(func(b []byte) (int, error) {
				if !killed {
					killed = true
					cmd.Process.Kill()
				}
				return len(b), nil
			})
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var ee *ExitError
			if err := cmd.Wait(); !errors.As(err, &ee) || ee.Signal() != syscall.SIGKILL {
				t.Fatalf("Wait: %v, want a SIGKILL", err)
			}
		})
	}
}

// writerFunc is an io.Writer of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
