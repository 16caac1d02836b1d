// Package leakcheck fails a test that leaves something running: goroutines,
// child processes, mounts, or temporary files it created. Tests call
// [Check] first; the check runs in cleanup, after the test's own cleanups.
package leakcheck

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// settle is how long Check waits for things to wind down before failing.
const settle = 5 * time.Second

// benign lists stack fragments of goroutines that belong to the runtime or
// the test framework, not to the code under test.
var benign = []string{
	"testing.(*T).Run",
	"testing.(*T).Parallel",
	"testing.tRunner",
	"testing.runTests",
	"testing.(*M).",
	"testing.runFuzzing",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"runtime/trace",
}

// snapshot is the state before a test.
type snapshot struct {
	goroutines map[string]bool
	children   []int
	mounts     int
	tempNames  map[string]bool
}

// Check records what runs now and registers a cleanup that fails t when,
// after waiting up to a few seconds, new goroutines, child processes, mounts
// or temp-directory entries named with one of tempPrefixes remain. An
// absolute prefix names its own directory: /dir/cc- watches entries of
// /dir whose names start with cc-.
func Check(t testing.TB, tempPrefixes ...string) {
	t.Helper()
	before := take(tempPrefixes)
	t.Cleanup(func() {
		var problems []string
		deadline := time.Now().Add(settle)
		for {
			problems = diff(before, take(tempPrefixes))
			if len(problems) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, p := range problems {
			t.Error(p)
		}
	})
}

func take(tempPrefixes []string) snapshot {
	s := snapshot{goroutines: map[string]bool{}, tempNames: map[string]bool{}}
	for id, stack := range goroutines() {
		if !isBenign(stack) {
			s.goroutines[id] = true
		}
	}
	s.children = children()
	s.mounts = mountCount()
	for _, p := range tempPrefixes {
		dir, prefix := os.TempDir(), p
		if filepath.IsAbs(p) {
			dir, prefix = filepath.Split(p)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				s.tempNames[filepath.Join(dir, e.Name())] = true
			}
		}
	}
	return s
}

func diff(before, after snapshot) []string {
	var problems []string
	all := goroutines()
	for id := range after.goroutines {
		if !before.goroutines[id] {
			problems = append(problems, "leaked goroutine:\n"+all[id])
		}
	}
	for _, pid := range after.children {
		if !slices.Contains(before.children, pid) {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			problems = append(problems, fmt.Sprintf("leaked child process %d: %s", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	if after.mounts > before.mounts {
		problems = append(problems, fmt.Sprintf("leaked mounts: %d before, %d after", before.mounts, after.mounts))
	}
	for name := range after.tempNames {
		if !before.tempNames[name] {
			problems = append(problems, "leaked temp entry "+name)
		}
	}
	return problems
}

// goroutines returns the stack of every goroutine by its id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		fields := strings.Fields(head) // goroutine 12 [running]:
		if len(fields) < 2 || fields[0] != "goroutine" {
			continue
		}
		out[fields[1]] = g
	}
	return out
}

func isBenign(stack string) bool {
	if strings.Contains(stack, "leakcheck.goroutines") {
		return true // the goroutine taking the snapshot
	}
	for _, b := range benign {
		if strings.Contains(stack, b) {
			return true
		}
	}
	return false
}

// children returns the pids of this process's direct children (Linux), or
// nil where /proc does not tell.
func children() []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	var pids []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(field); err == nil && !isZombieReaped(pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}

// isZombieReaped reports whether pid no longer exists.
func isZombieReaped(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err != nil
}

// mountCount returns the number of mounts in this process's namespace, or 0
// where /proc does not tell.
func mountCount() int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte{'\n'})
}
