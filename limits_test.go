package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// limitedInstance starts a host-image sandbox with limits, or, where the
// host has no cgroup controller for them (a rootless run), checks that New
// says so by name and skips: the error is the test there.
func limitedInstance(t *testing.T, controller string, opts ...Option) *Instance {
	t.Helper()
	inst, err := New(context.Background(), HostImage(), append([]Option{WithCacheDir(testCache)}, opts...)...)
	if err != nil {
		if !strings.Contains(err.Error(), "cgroup") || !strings.Contains(err.Error(), controller) {
			t.Fatalf("New: %v, want an error naming the cgroup %s controller", err, controller)
		}
		t.Skipf("limits unavailable here: %v", err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

// TestForkBomb: a fork bomb under WithPidsLimit hits the limit and stays
// under it, the host can still start processes, and Close ends every
// process of it.
func TestForkBomb(t *testing.T) {
	const limit = 64
	inst := limitedInstance(t, "pids", WithPidsLimit(limit))
	pidsDir := workloadCgroup(t, inst, "pids")
	pidsFile := func(name string) string { return filepath.Join(pidsDir, name) }
	// pids.events counts the forks the limit refused.
	refused := func() int {
		b, _ := os.ReadFile(pidsFile("pids.events"))
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(b), "max ")))
		return n
	}
	bomb := inst.Command("sh", "-c", "b() { while :; do b & done; }; b")
	if err := bomb.Start(); err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", inst.runner.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000 && refused() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if refused() == 0 {
		t.Fatal("the bomb never reached the pids limit")
	}
	for i := 0; i < 20; i++ {
		b, _ := os.ReadFile(pidsFile("pids.current"))
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n > limit {
			t.Errorf("%d tasks in the sandbox, limit %d", n, limit)
		}
		// The agent is the namespace's pid 1 and sits outside the
		// workload's budget; every other process counts against it.
		if n := len(workloadPids(ns)); n > limit {
			t.Errorf("%d workload processes in the sandbox, limit %d", n, limit)
		}
	}
	// The host is not starved.
	if out, err := exec.Command("echo", "host").Output(); err != nil || string(out) != "host\n" {
		t.Errorf("the host cannot start a process during the bomb: %q %v", out, err)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if left := pidsInNamespace(ns); len(left) != 0 {
		t.Errorf("processes of the bomb survived Close: %v", left)
	}
	if err := bomb.Wait(); err == nil {
		t.Error("the bomb's shell exited cleanly after Close")
	}
}

// TestCPUQuota: two busy loops under WithCPUs(1) get about one CPU between
// them, not the two this host has.
func TestCPUQuota(t *testing.T) {
	inst := limitedInstance(t, "cpu", WithCPUs(1))
	loop := inst.Command("sh", "-c", "while :; do :; done & while :; do :; done")
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	defer loop.Process.Kill()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", inst.runner.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	// CPU time used by the sandbox's processes over a wall-clock interval:
	// a ratio, so a slow machine changes nothing but the lower bound.
	cpu := func() time.Duration {
		var ticks int64
		for _, pid := range pidsInNamespace(ns) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
			u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
			s, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
			ticks += u + s
		}
		return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100
	}
	time.Sleep(200 * time.Millisecond) // let both loops start
	c0, w0 := cpu(), time.Now()
	time.Sleep(2 * time.Second)
	c1, w1 := cpu(), time.Now()
	ratio := float64(c1-c0) / float64(w1.Sub(w0))
	t.Logf("CPU used: %.2f CPUs", ratio)
	if ratio > 1.25 {
		t.Errorf("two busy loops under WithCPUs(1) used %.2f CPUs", ratio)
	}
	if ratio < 0.2 {
		t.Errorf("two busy loops used only %.2f CPUs: did they run?", ratio)
	}
}

// TestOpenFilesLimit: WithOpenFiles sets RLIMIT_NOFILE for every process.
func TestOpenFilesLimit(t *testing.T) {
	inst := hostInstance(t, WithOpenFiles(100))
	if out := run(t, inst, "ulimit -n; ulimit -Hn"); out != "100\n100\n" {
		t.Errorf("ulimit -n: %q, want 100 twice", out)
	}
	// 100 descriptors are all a process gets.
	out, err := inst.Command("bash", "-c", "exec 99</dev/null && echo ok99; exec 100</dev/null && echo ok100").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ok99") || strings.Contains(string(out), "ok100") {
		t.Errorf("descriptor 100 under a limit of 100: %q %v", out, err)
	}
}

// TestLimitOptions: bad limits are refused, and a disk limit, which this
// backend cannot enforce, fails New rather than being ignored.
func TestLimitOptions(t *testing.T) {
	for _, opt := range []Option{WithPidsLimit(0), WithPidsLimit(-1), WithOpenFiles(0), WithDiskMB(0)} {
		if _, err := New(context.Background(), HostImage(), WithCacheDir(testCache), opt); err == nil {
			t.Errorf("a bad limit was accepted")
		}
	}
	_, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithDiskMB(100), WithBackend("ns"))
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "WithDiskMB") {
		t.Errorf("WithDiskMB on the ns backend: %v, want ErrUnsupported naming the option", err)
	}
}

// workloadPids lists the host pids of the processes in pid namespace ns
// other than the namespace's init (the agent).
func workloadPids(ns string) []int {
	var out []int
	for _, pid := range pidsInNamespace(ns) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue // gone since it was listed
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
				if f[len(f)-1] != "1" {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}
