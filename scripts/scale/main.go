// Command scale starts N idle HostImage sandboxes one after another, prints
// how long that took and the memory they hold (the PSS of their agents
// and MemAvailable's fall), closes them all, and checks that nothing of
// them is left: no child processes, no mounts, no cgroups, no state
// directories. It exits 1 when a start fails, something is left, or
// MemAvailable falls below -min-available (it then stops starting and
// closes what it started); an interrupt (SIGINT, SIGTERM) stops the
// starting the same way. `make scale N=10000` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ccsandbox/sandbox"
)

func main() {
	n := flag.Int("n", 1000, "how many sandboxes")
	// 2 GiB keeps a 24 GiB machine responsive with 10,000 idle sandboxes
	// (about 2.1 MB of MemAvailable each) and the tool's own bookkeeping.
	minAvail := flag.Int("min-available", 2048, "stop starting below this much MemAvailable, in MiB")
	flag.Parse()
	restore := raiseLimits(*n)
	err := run(*n, uint64(*minAvail)<<10)
	restore()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(n int, minAvailKB uint64) error {
	cache, err := os.MkdirTemp("", "cc-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	// An interrupt stops the starting; what was started is still closed
	// and checked.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	before := takeState(cache)
	avail0, err := memAvailable()
	if err != nil {
		return err
	}
	insts := make([]*sandbox.Instance, 0, n)
	var startErr error
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			startErr = fmt.Errorf("stopped after %d sandboxes: interrupted", i)
			break
		}
		if i%100 == 0 {
			if a, err := memAvailable(); err == nil && a < minAvailKB {
				startErr = fmt.Errorf("stopped after %d sandboxes: MemAvailable %d MiB is below %d MiB", i, a>>10, minAvailKB>>10)
				break
			}
		}
		inst, err := sandbox.New(context.WithoutCancel(ctx), sandbox.HostImage(), sandbox.WithCacheDir(cache))
		if err != nil {
			startErr = fmt.Errorf("sandbox %d: %w", i+1, err)
			break
		}
		insts = append(insts, inst)
	}
	took := time.Since(start)
	avail1, _ := memAvailable()
	var pss uint64
	for _, pid := range children() { // the agents (or, with CC_USE_HELPER=1, the helpers)
		kb, _ := pssOf(pid)
		pss += kb
	}
	fmt.Printf("started %d idle sandboxes in %v (%.1f ms each)\n", len(insts), took.Round(time.Millisecond), float64(took.Milliseconds())/float64(max(len(insts), 1)))
	fmt.Printf("agents' PSS: %d MiB (%.0f KiB each); MemAvailable fell by %d MiB (%.0f KiB each)\n",
		pss>>10, float64(pss)/float64(max(len(insts), 1)), (avail0-avail1)>>10, float64(avail0-avail1)/float64(max(len(insts), 1)))
	start = time.Now()
	var closeErr error
	for _, inst := range insts {
		if err := inst.Close(); err != nil && closeErr == nil {
			closeErr = err
		}
	}
	fmt.Printf("closed them in %v\n", time.Since(start).Round(time.Millisecond))
	after := takeState(cache)
	left := before.left(after)
	if len(left) > 0 {
		fmt.Printf("left behind: %s\n", strings.Join(left, "; "))
	} else {
		fmt.Println("nothing left: no processes, mounts, cgroups or state directories")
	}
	switch {
	case startErr != nil:
		return startErr
	case closeErr != nil:
		return closeErr
	case len(left) > 0:
		return fmt.Errorf("%d kinds of things left behind", len(left))
	}
	return nil
}

// state is what sandboxes could leave behind.
type state struct {
	children, mounts, cgroups, stateDirs int
}

func takeState(cache string) state {
	s := state{children: len(children())}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	s.mounts = strings.Count(string(b), "\n")
	prefix := fmt.Sprintf("cc-sandbox.%d.", os.Getpid())
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			s.cgroups++
		}
		return nil
	})
	// instances/<process dir>/<instance>: count the instances
	dirs, _ := os.ReadDir(filepath.Join(cache, "instances"))
	for _, d := range dirs {
		ents, _ := os.ReadDir(filepath.Join(cache, "instances", d.Name()))
		s.stateDirs += len(ents)
	}
	return s
}

// children returns the pids of this process's children.
func children() []int {
	var pids []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// left names what after holds more of than s.
func (s state) left(after state) []string {
	var out []string
	for _, c := range []struct {
		what       string
		was, isNow int
	}{{"child processes", s.children, after.children}, {"mounts", s.mounts, after.mounts}, {"cgroups", s.cgroups, after.cgroups}, {"state directories", s.stateDirs, after.stateDirs}} {
		if c.isNow > c.was {
			out = append(out, fmt.Sprintf("%d %s", c.isNow-c.was, c.what))
		}
	}
	return out
}

// memAvailable returns /proc/meminfo's MemAvailable in KiB.
func memAvailable() (uint64, error) { return procField("/proc/meminfo", "MemAvailable:") }

// pssOf returns the PSS of process pid in KiB.
func pssOf(pid int) (uint64, error) {
	return procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

// procField returns the number after key in a /proc file of "key value kB" lines.
func procField(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", key, path)
}

// tasksPerSandbox bounds the kernel tasks one idle sandbox costs (the
// agent's threads), for the sysctls raiseLimits sets.
const tasksPerSandbox = 10

// raiseLimits raises, as root, the system limits n sandboxes would meet
// (kernel.pid_max, kernel.threads-max, user.max_user_namespaces) and this
// process's RLIMIT_NOFILE to its hard limit, says so, and returns the
// function that puts the sysctls back.
func raiseLimits(n int) func() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
			fmt.Printf("RLIMIT_NOFILE raised from %d to %d (its hard limit)\n", old, lim.Max)
		}
	}
	if os.Geteuid() != 0 {
		fmt.Println("not root: kernel.pid_max, kernel.threads-max and user.max_user_namespaces stay as they are")
		return func() {}
	}
	need := map[string]int{
		"kernel/pid_max":           min(n*tasksPerSandbox+65536, 4194304),
		"kernel/threads-max":       n*tasksPerSandbox + 65536,
		"user/max_user_namespaces": n + 1024,
	}
	var undo []func()
	for name, want := range need {
		path := "/proc/sys/" + name
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		was := strings.TrimSpace(string(b))
		if cur, err := strconv.Atoi(was); err != nil || cur >= want {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644); err != nil {
			fmt.Printf("could not raise %s from %s to %d: %v\n", strings.ReplaceAll(name, "/", "."), was, want, err)
			continue
		}
		fmt.Printf("raised %s from %s to %d (put back at the end)\n", strings.ReplaceAll(name, "/", "."), was, want)
		undo = append(undo, func() {
			os.WriteFile(path, []byte(was), 0o644)
			fmt.Printf("%s put back to %s\n", strings.ReplaceAll(name, "/", "."), was)
		})
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}
