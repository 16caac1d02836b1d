package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cgroupMounts returns the host's cgroup mounts: by v1 controller, and by
// "" for the v2 hierarchy.
func cgroupMounts(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mounts := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 || fields[3] != "/" {
			continue
		}
		switch tail[0] {
		case "cgroup2":
			mounts[""] = fields[4]
		case "cgroup":
			for _, o := range strings.Split(tail[2], ",") {
				mounts[o] = fields[4]
			}
		}
	}
	return mounts
}

// processCgroups returns the host directories of process pid's cgroups:
// by v1 controller (each of a hierarchy's), and by "" for v2.
func processCgroups(t testing.TB, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	mounts := cgroupMounts(t)
	dirs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if m, ok := mounts[c]; ok {
				dirs[c] = filepath.Join(m, parts[2])
			}
		}
	}
	return dirs
}

// sandboxCgroup returns the host directory of the sandbox's cgroup for
// controller ctrl ("" for v2): the one its agent's cgroup belongs to.
func sandboxCgroup(t testing.TB, inst *Instance, ctrl string) string {
	t.Helper()
	dir, ok := processCgroups(t, inst.runner.Pid())[ctrl]
	if !ok {
		t.Fatalf("the sandbox's agent is in no %q cgroup", ctrl)
	}
	if filepath.Base(dir) == "agent" { // cgroup v2 with limits: the agent's own leaf
		dir = filepath.Dir(dir)
	}
	return dir
}

// workloadCgroup returns the host directory of the cgroup that holds the
// sandbox's commands and its limit for controller ctrl: its workload
// cgroup, or the sandbox's own where it has none.
func workloadCgroup(t testing.TB, inst *Instance, ctrl string) string {
	t.Helper()
	dir := sandboxCgroup(t, inst, ctrl)
	if w := filepath.Join(dir, "workload"); dirExists(w) {
		return w
	}
	return dir
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
