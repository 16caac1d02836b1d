package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Helper-mode tests. The whole suite also runs with CC_USE_HELPER=1 (make
// test does); these tests choose the mode themselves.

// withHelper runs fn with helper mode on (and, with proxy, every call
// forwarded by the helper instead of going to the agent directly).
func withHelper(t testing.TB, proxy bool) {
	t.Helper()
	t.Setenv("CC_USE_HELPER", "1")
	ipc.ResetUseHelper()
	forceProxy = proxy
	t.Cleanup(func() {
		forceProxy = false
		ipc.ResetUseHelper()
	})
}

// helperPid returns the pid of the helper process behind inst.
func helperPid(t *testing.T, inst *Instance) int {
	r, ok := inst.runner.(*helper.Remote)
	if !ok {
		t.Fatal("the instance does not run in a helper")
	}
	var pid int
	fmt.Sscanf(r.Info(), "cc-helper pid %d", &pid)
	if pid == 0 {
		t.Fatalf("no pid in %q", r.Info())
	}
	return pid
}

// TestHelperProxy runs the command, file and connection tables through a
// helper that forwards every call (as it must for backends whose agent
// connection it cannot share).
func TestHelperProxy(t *testing.T) {
	withHelper(t, true)
	inst := hostInstance(t)
	if r := inst.runner.(*helper.Remote); r.Direct() {
		t.Fatal("the proxy test got a direct channel")
	}
	for _, tc := range execCases {
		t.Run("exec/"+tc.name, func(t *testing.T) { tc.fn(t, inst) })
	}
	for _, tc := range fileCases {
		t.Run("file/"+tc.name, func(t *testing.T) { tc.fn(t, inst) })
	}
	t.Run("net", func(t *testing.T) {
		ln, err := inst.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.Copy(c, c)
				c.Close()
			}
		}()
		c, err := inst.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("via the helper"))
		got := make([]byte, 14)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "via the helper" {
			t.Fatalf("echo: %q %v", got, err)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		s := hostInstance(t, withoutDescriptors())
		out, err := s.Command("sh", "-c", "cat; echo done").Output()
		if err != nil || string(out) != "done\n" {
			t.Fatalf("%q %v", out, err)
		}
	})
}

// TestHelperErrors: errors keep their identity across the helper.
func TestHelperErrors(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(fmt.Sprint("proxy=", proxy), func(t *testing.T) {
			withHelper(t, proxy)
			inst := hostInstance(t, WithTimeout(time.Minute))
			if _, err := inst.Stat("/nope"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Stat: %v", err)
			}
			if err := inst.Command("nope").Run(); !errors.Is(err, exec.ErrNotFound) {
				t.Errorf("not found: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := inst.CommandContext(ctx, "true").Run(); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled: %v", err)
			}
			short := hostInstance(t, WithTimeout(200*time.Millisecond))
			if err := short.Wait(context.Background()); !errors.Is(err, ErrTimeout) {
				t.Errorf("timeout through the helper: %v", err)
			}
			inst.Close()
			if err := inst.Command("true").Run(); !errors.Is(err, ErrNotRunning) {
				t.Errorf("after Close: %v", err)
			}
		})
	}
}

// TestHelperBinary: an installed cc-helper is found and used.
func TestHelperBinary(t *testing.T) {
	// scripts/test-rootless.sh builds it beforehand: the unprivileged
	// user has no Go cache of its own.
	bin := os.Getenv("CC_TEST_HELPER_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "cc-helper")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./cmd/cc-helper").CombinedOutput()
		if err != nil {
			t.Fatalf("building cc-helper: %v\n%s", err, out)
		}
	}
	t.Setenv("CC_HELPER_PATH", bin)
	withHelper(t, false)
	inst := hostInstance(t)
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", helperPid(t, inst)))
	if exe != bin {
		t.Errorf("the helper runs %s, want %s", exe, bin)
	}
	if got := run(t, inst, "echo ok"); got != "ok\n" {
		t.Errorf("%q", got)
	}
}

// helperFault starts something blocking, kills the helper, and checks the
// blocked call returns and nothing stays behind.
func helperFault(t *testing.T, proxy bool, block func(inst *Instance) (wait func() error)) {
	withHelper(t, proxy)
	inst := hostInstance(t)
	agent := inst.runner.Pid()
	wait := block(inst)
	time.Sleep(50 * time.Millisecond) // let the call reach the sandbox; the test holds either way
	if err := syscall.Kill(helperPid(t, inst), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the blocked call succeeded after the helper died")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked call hangs after the helper died")
	}
	select {
	case <-inst.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not fire after the helper died")
	}
	if !errors.Is(inst.Err(), ErrNotRunning) {
		t.Errorf("Err after the helper died: %v", inst.Err())
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", agent)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sandbox outlived its helper")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHelperKilled(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("Command/proxy=%v", proxy), func(t *testing.T) {
			helperFault(t, proxy, func(inst *Instance) func() error {
				cmd := inst.Command("sleep", "1000")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return cmd.Wait
			})
		})
		t.Run(fmt.Sprintf("Accept/proxy=%v", proxy), func(t *testing.T) {
			helperFault(t, proxy, func(inst *Instance) func() error {
				ln, err := inst.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				return func() error { _, err := ln.Accept(); return err }
			})
		})
		t.Run(fmt.Sprintf("Read/proxy=%v", proxy), func(t *testing.T) {
			helperFault(t, proxy, func(inst *Instance) func() error {
				cmd := inst.Command("sleep", "1000")
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return func() error {
					_, err := out.Read(make([]byte, 1))
					cmd.Wait()
					if err == io.EOF {
						return errors.New("end of file")
					}
					return err
				}
			})
		})
	}
}

// TestClientKilled: when the client process dies, its helper and sandbox
// exit.
func TestClientKilled(t *testing.T) {
	child, line := startChild(t, "helper-then-hang")
	var pids []int
	for _, f := range strings.Fields(line) {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	alive := func() []int {
		var out []int
		for _, p := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && !strings.Contains(string(b), ") Z ") {
				out = append(out, p)
			}
		}
		return out
	}
	if left := waitGone(alive); left != nil {
		t.Fatalf("helper or sandbox (pids %v) outlived the client", left)
	}
}
