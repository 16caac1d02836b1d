package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// childLimits are the limits of the children's sandboxes: one per v1
// controller this host may hold them in.
var childLimits = []Option{WithPidsLimit(200), WithMemoryMB(512), WithCPUs(1)}

// cgroupChild plays the child roles of the cgroup tests; ok is false for
// other roles.
func cgroupChild(role string) (code int, ok bool) {
	cache := WithCacheDir(os.Getenv("CC_CACHE_DIR"))
	switch role {
	case "limited-sandbox-then-hang":
		// Wait for a line (the test moves this process into cgroups
		// meanwhile), start a sandbox with limits and a command in it;
		// report the agent's host pid and its pid namespace, then wait to
		// be killed.
		bufio.NewReader(os.Stdin).ReadString('\n')
		inst, err := New(context.Background(), HostImage(), append([]Option{cache}, childLimits...)...)
		if err != nil {
			fmt.Println("error:", err)
			return 1, true
		}
		if err := inst.Command("sleep", "1000").Start(); err != nil {
			fmt.Println("error:", err)
			return 1, true
		}
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", inst.runner.Pid()))
		fmt.Printf("%d %s\n", inst.runner.Pid(), ns)
		select {}
	case "new-then-close":
		// Wait for a line, then start a sandbox (and so sweep) and close it.
		bufio.NewReader(os.Stdin).ReadString('\n')
		inst, err := New(context.Background(), HostImage(), cache)
		if err != nil {
			fmt.Println("error:", err)
			return 1, true
		}
		if err := inst.Close(); err != nil {
			fmt.Println("error:", err)
			return 1, true
		}
		fmt.Println("ok")
		return 0, true
	case "limited-sandbox-when-told":
		// Wait for a line (the test moves this process into a cgroup
		// meanwhile), start a sandbox with limits, report its agent's pid,
		// and close it at the next line.
		in := bufio.NewReader(os.Stdin)
		in.ReadString('\n')
		inst, err := New(context.Background(), HostImage(), append([]Option{cache}, childLimits...)...)
		if err != nil {
			fmt.Println("error:", err)
			return 1, true
		}
		fmt.Println(inst.runner.Pid())
		in.ReadString('\n')
		if err := inst.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "Close:", err)
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// needCgroups skips a test whose subject is the sandboxes' cgroups when
// this user cannot have any here, after checking that New then says so
// for limits by name.
func needCgroups(t *testing.T) {
	t.Helper()
	inst, err := New(context.Background(), HostImage(), append([]Option{WithCacheDir(testCache)}, childLimits...)...)
	if err != nil {
		if !strings.Contains(err.Error(), "cgroup") {
			t.Fatalf("New with limits: %v, want an error naming cgroups", err)
		}
		t.Skipf("no cgroups for this user here: %v", err)
	}
	inst.Close()
}

// TestCgroupsUnderCaller: a sandbox's cgroups nest under its caller's, in
// every hierarchy (on gVisor, in those of the limits the host holds; in
// the others it stays in its caller's), so that the sandbox stays within
// the limits of the container or unit the caller runs in. The caller here
// is a child process the test moves into cgroups of its own first.
func TestCgroupsUnderCaller(t *testing.T) {
	needCgroups(t)
	callers, made := callerCgroups(t)
	child := childCommand(t, "limited-sandbox-when-told")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := child.Wait(); err != nil {
			t.Errorf("the child: %v", err)
		}
	}()
	moveInto(t, child, made)
	fmt.Fprintln(stdin, "go")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	agentPid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		child.Process.Kill()
		t.Fatalf("the child: %q %v", line, err)
	}
	agent := processCgroups(t, agentPid)
	gvisor := os.Getenv("CC_BACKEND") == string(BackendGVisor)
	for ctrl, caller := range callers {
		got, ok := agent[ctrl]
		if !ok {
			t.Errorf("the agent is in no %q cgroup", ctrl)
			continue
		}
		switch {
		case strings.HasPrefix(got, caller+"/"):
		case got == caller && gvisor && ctrl != "memory" && ctrl != "cpu":
			// gVisor makes host cgroups only for the limits the host
			// holds, memory and CPU (its pids limit is gVisor's own, and
			// it has no freezer): elsewhere the sandbox stays in its
			// caller's cgroup, within its limits as well.
		default:
			t.Errorf("the sandbox's %q cgroup %s is not under its caller's, %s", ctrl, got, caller)
		}
	}
	fmt.Fprintln(stdin, "close")
}

// callerCgroups makes a cgroup of its own for a caller, under this test
// process's, in each hierarchy a sandbox uses (v2 for the freezer, the
// limits' controllers, and without v2 the v1 freezer), and removes them
// when t ends. It returns them by controller ("" for v2) and each
// directory once.
func callerCgroups(t *testing.T) (callers map[string]string, made []string) {
	t.Helper()
	own := processCgroups(t, os.Getpid())
	name := fmt.Sprintf("cc-test-caller-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	callers = map[string]string{}
	ctrls := []string{"", "memory", "pids", "cpu"}
	if _, ok := own[""]; !ok {
		ctrls = append(ctrls, "freezer")
	}
	for _, ctrl := range ctrls {
		parent, ok := own[ctrl]
		if !ok {
			continue
		}
		dir := filepath.Join(parent, name)
		if !slices.Contains(made, dir) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			made = append(made, dir)
			t.Cleanup(func() {
				if err := os.Remove(dir); err != nil {
					t.Errorf("removing the caller's cgroup: %v", err)
				}
			})
		}
		callers[ctrl] = dir
	}
	return callers, made
}

// moveInto moves child, started and waiting to be told, into the cgroups
// dirs; it kills the child and fails t if it cannot.
func moveInto(t *testing.T, child *exec.Cmd, dirs []string) {
	t.Helper()
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(child.Process.Pid)), 0); err != nil {
			child.Process.Kill()
			child.Wait()
			t.Fatal(err)
		}
	}
}

// startChildIn starts this test binary in role, a role that waits for a
// line before it starts a sandbox, moves it into the cgroups dirs, tells
// it to go on, and returns it with the first line it prints and its
// standard input; a line starting with "error" fails the test.
func startChildIn(t *testing.T, role string, dirs []string) (*exec.Cmd, string, io.WriteCloser) {
	t.Helper()
	child := childCommand(t, role)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	moveInto(t, child, dirs)
	fmt.Fprintln(stdin, "go")
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("child: %q %v", line, err)
	}
	return child, line, stdin
}

// TestHostKilledCgroups: the cgroups of sandboxes whose host died by
// SIGKILL are removed by the next process that starts a sandbox, and only
// those.
func TestHostKilledCgroups(t *testing.T) {
	needCgroups(t)
	// Every process here runs in cgroups of its own, so that the sweep of
	// another process starting sandboxes at the same time (another test
	// binary beside this one) cannot take the killed host's cgroups first:
	// a sweep looks only under its caller's cgroup.
	_, made := callerCgroups(t)
	child, line, _ := startChildIn(t, "limited-sandbox-then-hang", made)
	fields := strings.Fields(line)
	agentPid, _ := strconv.Atoi(fields[0])
	// The sandbox's own cgroups: those of its agent that are not its
	// host's.
	host := processCgroups(t, child.Process.Pid)
	var left []string
	seen := map[string]bool{}
	for ctrl, dir := range processCgroups(t, agentPid) {
		if filepath.Base(dir) == "agent" {
			dir = filepath.Dir(dir)
		}
		if !seen[dir] && dir != host[ctrl] {
			seen[dir] = true
			left = append(left, dir)
		}
	}
	if len(left) == 0 {
		t.Fatalf("the sandbox of the child has no cgroup of its own: %v", processCgroups(t, agentPid))
	}
	// A live sandbox beside it, under the same caller, whose cgroups a
	// sweep must leave alone.
	live, line, liveIn := startChildIn(t, "limited-sandbox-when-told", made)
	livePid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("the live sandbox's child: %q", line)
	}
	liveDirs := processCgroups(t, livePid)
	defer func() {
		fmt.Fprintln(liveIn, "close")
		if err := live.Wait(); err != nil {
			t.Errorf("the live sandbox's child: %v", err)
		}
	}()

	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if l := waitGone(func() []int { return pidsInNamespace(fields[1]) }); l != nil {
		t.Fatalf("processes of the sandbox survived their host: %v", l)
	}
	for _, dir := range left {
		if !dirExists(dir) {
			t.Fatalf("%s went with its host: nothing left for the sweep to do", dir)
		}
	}
	next, line, _ := startChildIn(t, "new-then-close", made)
	if err := next.Wait(); err != nil || strings.TrimSpace(line) != "ok" {
		t.Fatalf("the next process: %q %v", line, err)
	}
	for _, dir := range left {
		if dirExists(dir) {
			t.Errorf("the cgroup %s of a sandbox whose host was killed survived the next start", dir)
		}
	}
	for ctrl, dir := range liveDirs {
		if !dirExists(dir) {
			t.Errorf("the sweep removed the %q cgroup %s of a live sandbox", ctrl, dir)
		}
	}
}
