package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
)

// BenchmarkStartPhases: New + Command("true").Run + Close from HostImage,
// as BenchmarkStartRunClose, with New's phases traced (hv.Trace): each
// phase's mean is reported as a metric named NN-phase-µs, in the order the
// phases end, then the first command's and Close's. The floor is bwrap's
// whole run, as for BenchmarkStartRunClose.
func BenchmarkStartPhases(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		var order []string
		sums := map[string]time.Duration{}
		add := func(name string, d time.Duration) {
			if _, ok := sums[name]; !ok {
				order = append(order, name)
			}
			sums[name] += d
		}
		ctx := hv.WithTrace(context.Background(), &hv.Trace{Phase: add})
		n := 0
		for b.Loop() {
			inst, err := New(ctx, HostImage(), WithCacheDir(testCache))
			if err != nil {
				b.Fatal(err)
			}
			t := time.Now()
			err = inst.Command("true").Run()
			add("first command", time.Since(t))
			t = time.Now()
			if cerr := inst.Close(); err == nil {
				err = cerr
			}
			add("close", time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		for i, name := range order {
			b.ReportMetric(float64(sums[name].Microseconds())/float64(n), fmt.Sprintf("%02d-%s-µs", i+1, strings.ReplaceAll(name, " ", "-")))
		}
	})
	b.Run("floor", bwrapTrue)
}

// BenchmarkStartParallel: W goroutines each looping New +
// Command("true").Run + Close, for W = 1, 2 and 4, reported as sandboxes
// per second (ns/op is the wall time per sandbox), beside W parallel loops
// of `unshare -Urmpin --fork --mount-proc true`. The parent logs each
// side's speedup of 4 workers over 1: how the start scales with cores.
func BenchmarkStartParallel(b *testing.B) {
	rates := map[string]float64{}
	var mu sync.Mutex
	for _, w := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.Run("sdk", func(b *testing.B) {
				parallelLoop(b, w, rates, &mu, func() error {
					return runTrueAndClose(New(context.Background(), HostImage(), WithCacheDir(testCache)))
				})
			})
			b.Run("floor", func(b *testing.B) {
				unshare, err := exec.LookPath("unshare")
				if err != nil {
					b.Fatalf("unshare is missing (util-linux): %v", err)
				}
				parallelLoop(b, w, rates, &mu, func() error {
					out, err := exec.Command(unshare, "-Urmpin", "--fork", "--mount-proc", "true").CombinedOutput()
					if err != nil {
						return fmt.Errorf("unshare: %v\n%s", err, out)
					}
					return nil
				})
			})
		})
	}
	for _, side := range []string{"sdk", "floor"} {
		one, four := rates[side+"/1"], rates[side+"/4"]
		if one > 0 && four > 0 {
			b.Logf("%s: 4 workers over 1: %.2fx (%.0f/s over %.0f/s)", side, four/one, four, one)
		}
	}
	if s, f := rates["sdk/4"]/rates["sdk/1"], rates["floor/4"]/rates["floor/1"]; s > 0 && f > 0 {
		b.Logf("speedup sdk/floor: %.2f (target ≥ 0.8)", s/f)
	}
}

// parallelLoop runs op b.N times over w goroutines and reports sandboxes
// per second, recording it in rates under "<role>/<w>".
func parallelLoop(b *testing.B, w int, rates map[string]float64, mu *sync.Mutex, op func() error) {
	var next atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "sandboxes/s")
	name := b.Name()
	mu.Lock()
	rates[name[strings.LastIndex(name, "/")+1:]+"/"+strconv.Itoa(w)] = rate
	mu.Unlock()
}

// idleCount is how many idle sandboxes BenchmarkIdlePSS keeps at once.
const idleCount = 100

// BenchmarkIdlePSS: the memory of idleCount idle HostImage sandboxes, per
// sandbox: "PSS-KB/sandbox" is the proportional set size of each
// sandbox's processes (the agent) plus the host's Go heap and stacks
// they hold; "host-KB/sandbox" and "goroutines/sandbox" are the host's
// part alone. The floor is idleCount idle bwrap sandboxes (bwrap and a
// sleep in each), measured alike. ns/op is the time to start them all.
func BenchmarkIdlePSS(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			heap0, gr0 := hostMemory()
			b.StartTimer()
			insts := make([]*Instance, 0, idleCount)
			for range idleCount {
				inst, err := New(context.Background(), HostImage(), WithCacheDir(testCache))
				if err != nil {
					closeInstances(insts)
					b.Fatal(err)
				}
				insts = append(insts, inst)
			}
			b.StopTimer()
			heap1, gr1 := hostMemory()
			var pss uint64
			for _, inst := range insts {
				kb, err := treePSS(inst.runner.Pid())
				if err != nil {
					closeInstances(insts)
					b.Fatal(err)
				}
				pss += kb
			}
			host := float64(int64(heap1-heap0)) / 1024 / idleCount
			b.ReportMetric(float64(pss)/idleCount+host, "PSS-KB/sandbox")
			b.ReportMetric(host, "host-KB/sandbox")
			b.ReportMetric(float64(gr1-gr0)/idleCount, "goroutines/sandbox")
			if err := closeInstances(insts); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("floor", func(b *testing.B) {
		bwrap, err := exec.LookPath("bwrap")
		if err != nil {
			b.Fatalf("bwrap is missing (make bench installs Debian's bubblewrap): %v", err)
		}
		// No --die-with-parent: the parent death signal follows the
		// thread that forked bwrap, which the Go runtime may end; the loop
		// kills them itself.
		args := []string{"--unshare-all", "--ro-bind", "/usr", "/usr",
			"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"}
		for _, d := range hostDirs[1:] {
			if target, err := os.Readlink("/" + d); err == nil {
				args = append(args, "--symlink", target, "/"+d)
			}
		}
		args = append(args, "--info-fd", "3", "/bin/sleep", "1000")
		for b.Loop() {
			var cmds []*exec.Cmd
			stop := func() {
				for _, c := range cmds {
					c.Process.Kill()
					c.Wait()
				}
			}
			for range idleCount {
				r, w, err := os.Pipe()
				if err != nil {
					stop()
					b.Fatal(err)
				}
				c := exec.Command(bwrap, args...)
				c.ExtraFiles = []*os.File{w}
				err = c.Start()
				w.Close()
				if err != nil {
					r.Close()
					stop()
					b.Fatal(err)
				}
				cmds = append(cmds, c)
				// bwrap writes its info once the sandbox runs, and closes
				// it (closing it early would kill bwrap with SIGPIPE).
				io.ReadAll(r)
				r.Close()
			}
			b.StopTimer()
			var pss uint64
			for _, c := range cmds {
				kb, err := treePSS(c.Process.Pid)
				if err != nil {
					stop()
					b.Fatal(err)
				}
				pss += kb
			}
			b.ReportMetric(float64(pss)/idleCount, "PSS-KB/sandbox")
			stop()
			b.StartTimer()
		}
	})
}

// closeInstances closes insts and returns the first error.
func closeInstances(insts []*Instance) error {
	var first error
	for _, inst := range insts {
		if err := inst.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// hostMemory returns this process's Go heap and stacks in use after a
// collection, and its number of goroutines.
func hostMemory() (uint64, int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}

// treePSS returns the PSS in KiB of process pid and all its descendants.
func treePSS(pid int) (uint64, error) {
	kb, err := pssOf(pid)
	if err != nil {
		return 0, err
	}
	var children []string
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		list, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		children = append(children, strings.Fields(string(list))...)
	}
	for _, f := range children {
		c, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		ckb, err := treePSS(c)
		if err != nil {
			return 0, err
		}
		kb += ckb
	}
	return kb, nil
}

// pssOf returns the Pss line of /proc/PID/smaps_rollup, in KiB.
func pssOf(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(data) {
		if rest, ok := bytes.CutPrefix(line, []byte("Pss:")); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}
