package ns

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/hv/cgroupdir"
)

// cgroupsOf returns process pid's cgroup paths: by v1 controller, and by
// "" for v2.
func cgroupsOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out
}

// othersInNamespace returns the host pids of the processes in pid's pid
// namespace, but pid.
func othersInNamespace(pid int) []int {
	ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		p, _ := strconv.Atoi(filepath.Base(d))
		if l, err := os.Readlink(d + "/ns/pid"); err == nil && l == ns && p != pid {
			out = append(out, p)
		}
	}
	return out
}

// TestWorkloadCgroups: in a sandbox with limits the agent sits outside the
// cgroups that hold them and every command inside, on every kind of host
// this one can pose as: as it is (here v1 controllers, perhaps with a v2
// hierarchy for the freezer), without cgroup v2, and with a threaded v2
// workload cgroup as a v2 host with pids or cpu limits has. The freezer
// works in each.
func TestWorkloadCgroups(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode cgroupMode
	}{{"host", cgroupAuto}, {"v1-only", cgroupV1Only}, {"v2-split", cgroupV2Split}} {
		t.Run(mode.name, func(t *testing.T) {
			sb, c := startWith(t, Backend{cgroups: mode.mode}, func(cfg *hv.Config) { cfg.PidsMax = 64; cfg.MemoryMB = 256 })
			spawn(t, c, "exec busybox sleep 1000")
			var cmds []int
			for deadline := time.Now().Add(20 * time.Second); len(cmds) == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				cmds = othersInNamespace(sb.Pid())
			}
			if len(cmds) != 1 {
				t.Fatalf("processes in the sandbox but its agent: %v, want the command", cmds)
			}
			agent, cmd := cgroupsOf(t, sb.Pid()), cgroupsOf(t, cmds[0])
			for _, ctrl := range []string{"pids", "memory"} {
				if _, v1 := agent[ctrl]; !v1 {
					continue // held by v2, below
				}
				if want := agent[ctrl] + "/workload"; cmd[ctrl] != want {
					t.Errorf("the command's %s cgroup: %s, want %s (the agent's is %s)", ctrl, cmd[ctrl], want, agent[ctrl])
				}
			}
			v2 := sb.cgroup.v2Top != ""
			switch {
			case mode.mode == cgroupV1Only && v2:
				t.Error("the sandbox has a v2 cgroup on a host posing as v1-only")
			case sb.cgroup.v2Workload != "":
				if !strings.Contains(agent[""], cgroupdir.Prefix) || cmd[""] != agent[""]+"/workload" {
					t.Errorf("v2 with a workload: the agent in %s, the command in %s", agent[""], cmd[""])
				}
			case v2:
				if cmd[""] != agent[""] || !strings.Contains(agent[""], cgroupdir.Prefix) {
					t.Errorf("v2 without limits: the agent in %s, the command in %s, want both in the sandbox's", agent[""], cmd[""])
				}
			}
			if mode.mode == cgroupV2Split && sb.cgroup.v2Workload == "" {
				t.Error("v2-split gave the sandbox no v2 workload cgroup")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := sb.Freeze(ctx); err != nil {
				t.Fatalf("Freeze: %v", err)
			}
			if err := sb.Thaw(); err != nil {
				t.Fatalf("Thaw: %v", err)
			}
		})
	}
}
