package cgroupdir

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// A process that dies without stopping its sandboxes (SIGKILL) leaves
// their cgroup directories behind: the kernel removes processes, never
// directories. Each names its owner (see Name), and the first sandbox
// start of every process, whichever its backend, removes under its own
// cgroup those whose owner is gone. A directory of a live owner is never
// touched, so a sweep cannot take the cgroup of a sandbox being started
// elsewhere.

var swept sync.Once

// SweepOnce removes, the first time it is called in this process, the
// sandbox cgroups under the caller's cgroup in each of hs whose owner is
// gone. One that still holds processes stays (the kernel refuses), for a
// later process's sweep; what it cannot remove it logs to log, if not nil.
func SweepOnce(hs []Hierarchy, log *slog.Logger) {
	swept.Do(func() { sweep(hs, log) })
}

// sweep removes the leftovers under the caller's cgroup in each of hs.
func sweep(hs []Hierarchy, log *slog.Logger) {
	for _, h := range hs {
		entries, err := os.ReadDir(h.Caller)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), Prefix) {
				continue
			}
			pid, start, ok := owner(e.Name())
			if !ok || ownerAlive(pid, start) {
				continue
			}
			dir := filepath.Join(h.Caller, e.Name())
			if err := removeTree(dir); err != nil && log != nil {
				log.Warn("removing the cgroup of a sandbox whose owner is gone", "dir", dir, "err", err)
			}
		}
	}
}

// removeTree removes a cgroup directory and the cgroups below it,
// deepest first, after thawing it: a task frozen by the v1 freezer cannot
// die, not even of the SIGKILL its agent's death sent it.
func removeTree(dir string) error {
	os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return Remove(dir)
}
