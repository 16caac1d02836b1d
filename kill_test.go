package sandbox

import (
	"bufio"
	"context"
	"fmt"
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

// childRoleEnv makes the test binary play a part in another test: it then
// runs runChild instead of the tests.
const childRoleEnv = "CC_SANDBOX_TEST_CHILD"

// runChild plays the role named by the environment.
func runChild(role string) int {
	switch role {
	case "new-at-nofile":
		return newAtNofile()
	case "sandbox-then-hang":
		// Start a sandbox with a command in it, report the agent's host pid
		// and the pid namespace, then wait to be killed.
		inst, err := New(context.Background(), HostImage(), WithCacheDir(os.Getenv("CC_CACHE_DIR")))
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		cmd := inst.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		pid := inst.runner.Pid()
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		fmt.Printf("%d %s\n", pid, ns)
		select {}
	case "helper-then-hang":
		// The same through a helper: report the helper's and the agent's
		// pids, then wait to be killed.
		os.Setenv("CC_USE_HELPER", "1")
		inst, err := New(context.Background(), HostImage(), WithCacheDir(os.Getenv("CC_CACHE_DIR")))
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		var hp int
		fmt.Sscanf(inst.runner.(*helper.Remote).Info(), "cc-helper pid %d", &hp)
		fmt.Printf("%d %d\n", hp, inst.runner.Pid())
		select {}
	}
	if code, ok := cgroupChild(role); ok {
		return code
	}
	if role == "snapshot" {
		return snapshotChild()
	}
	if role == "probe" {
		return probe()
	}
	if role == "swapper" {
		return swapper()
	}
	if role == "tty-host" {
		return ttyHost()
	}
	if role == "tty-probe" {
		return ttyProbe(os.Args[len(os.Args)-1])
	}
	if role == "helper-dial" {
		return helperDial(os.Args[len(os.Args)-1])
	}
	if role == "interrupted" {
		return interrupted(os.Args[len(os.Args)-1])
	}
	if role == "exchange" {
		return exchangerRole(os.Args[1:])
	}
	fmt.Fprintln(os.Stderr, "unknown child role", role)
	return 2
}

// TestHostKilled: when the host process dies by SIGKILL, no process of its
// sandboxes survives it.
func TestHostKilled(t *testing.T) {
	child, line := startChild(t, "sandbox-then-hang")
	fields := strings.Fields(line)
	agentPid, _ := strconv.Atoi(fields[0])
	pidNS := fields[1]
	if members := pidsInNamespace(pidNS); len(members) < 2 {
		t.Fatalf("the sandbox has %d processes before the kill, want the agent and sleep", len(members))
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if left := waitGone(func() []int { return pidsInNamespace(pidNS) }); left != nil {
		t.Fatalf("processes of the sandbox survived their host: %v (agent %d)", left, agentPid)
	}
	// With a helper, its socket file is left behind; the next helper start
	// anywhere sweeps it away (ipc.RemoveStaleSockets).
	ipc.RemoveStaleSockets()
	if left, _ := filepath.Glob(socketPrefix(child.Process.Pid) + "*"); len(left) > 0 {
		t.Errorf("files of the killed host left after a sweep: %v", left)
	}
}

// childCommand returns a command that runs this test binary in role (see
// childRoleEnv), with the tests' cache directory.
func childCommand(t *testing.T, role string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe)
	child.Env = append(os.Environ(), childRoleEnv+"="+role, "CC_CACHE_DIR="+testCache)
	return child
}

// startChild starts this test binary in role and returns it with the
// first line it prints; a line starting with "error" fails the test.
func startChild(t *testing.T, role string) (*exec.Cmd, string) {
	child := childCommand(t, role)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("child: %q %v", line, err)
	}
	return child, line
}

// waitGone calls left until it returns nothing, for up to 10 s, and
// returns what it returned last: nil once everything is gone.
func waitGone(left func() []int) []int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := left()
		if len(l) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidsInNamespace lists the host pids of processes in the pid namespace ns
// (as /proc/PID/ns/pid names it).
func pidsInNamespace(ns string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		if l, err := os.Readlink(d + "/ns/pid"); err == nil && l == ns {
			pid, _ := strconv.Atoi(filepath.Base(d))
			if b, err := os.ReadFile(d + "/stat"); err == nil && strings.Contains(string(b), ") Z ") {
				continue // a zombie is already dead
			}
			out = append(out, pid)
		}
	}
	return out
}
