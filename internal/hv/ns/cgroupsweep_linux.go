package ns

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// A process that dies without stopping its sandboxes (SIGKILL) leaves
// their cgroup directories behind: the kernel removes processes, never
// directories. Each names its owner, the process that made it, by pid and
// start time (see cgroupName), and the first sandbox start of every
// process removes, under its own cgroup, those whose owner is gone. A
// directory of a live owner is never touched, so a sweep cannot take the
// cgroup of a sandbox being started elsewhere.

var sweptCgroups sync.Once

// sweepCgroupsOnce runs sweepCgroups once per process.
func sweepCgroupsOnce(hs []hierarchy, log *slog.Logger) {
	sweptCgroups.Do(func() { sweepCgroups(hs, log) })
}

// sweepCgroups removes the sandbox cgroups under this process's cgroup,
// in each hierarchy, whose owner process is gone. One that still holds
// processes stays (the kernel refuses), for a later sweep.
func sweepCgroups(hs []hierarchy, log *slog.Logger) {
	for _, h := range hs {
		entries, err := os.ReadDir(h.caller)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), cgroupPrefix) {
				continue
			}
			pid, start, ok := cgroupOwner(e.Name())
			if !ok || ownerAlive(pid, start) {
				continue
			}
			dir := filepath.Join(h.caller, e.Name())
			if err := removeCgroupTree(dir); err != nil && log != nil {
				log.Warn("removing the cgroup of a sandbox whose owner is gone", "dir", dir, "err", err)
			}
		}
	}
}

// cgroupOwner parses the owner out of a sandbox cgroup's name.
func cgroupOwner(name string) (pid int, start uint64, ok bool) {
	f := strings.SplitN(strings.TrimPrefix(name, cgroupPrefix), ".", 3)
	if len(f) != 3 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

// ownerAlive reports whether process pid runs (a zombie is dead: its
// parent, killed too, may leave it unreaped for a while) and started at
// start.
func ownerAlive(pid int, start uint64) bool {
	got, state, err := startTime(pid)
	return err == nil && got == start && state != "Z" && state != "X"
}

// ownStart returns this process's start time (see startTime).
var ownStart = sync.OnceValue(func() uint64 {
	t, _, _ := startTime(os.Getpid())
	return t
})

// startTime returns when process pid started, in clock ticks after boot
// (field 22 of /proc/PID/stat; with the pid, it names one process for
// good, where a pid alone may be reused), and its state (field 3).
func startTime(pid int) (start uint64, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// The command name, field 2, may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, "", errors.New("malformed stat")
	}
	start, err = strconv.ParseUint(fields[19], 10, 64) // field 22: the 20th after the name
	return start, fields[0], err
}

// removeCgroupTree removes a cgroup directory and the cgroups below it,
// deepest first, after thawing it: a task frozen by the v1 freezer cannot
// die, not even of the SIGKILL its agent's death sent it.
func removeCgroupTree(dir string) error {
	os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return removeCgroupDir(dir)
}
