package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv/ns"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Benchmarks pair "sdk" with "floor": the same work done by the nearest
// thing without the SDK, measured in the same run (scripts/benchratio
// prints the ratio).

// BenchmarkStartRunClose: New + Command("true").Run + Close from a cached
// image, beside bwrap running /bin/true with all namespaces unshared on the
// same root (the host's /usr, read-only).
func BenchmarkStartRunClose(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		startRunClose(b, HostImage(), WithCacheDir(testCache))
	})
	b.Run("floor", bwrapTrue)
}

// BenchmarkAgentStart: what every sandbox pays before it does anything,
// beside bwrap's whole New + Run + Close: this binary started again as the
// agent in a sandbox's namespaces (fork, exec, loader, Go runtime, package
// inits), finding no configuration and exiting. It is the floor of
// BenchmarkStartRunClose that re-executing the host program sets.
func BenchmarkAgentStart(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			var stderr bytes.Buffer
			cmd := ns.AgentCommand(idmap.Current())
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "cc agent: reading the configuration") {
				b.Fatalf("the agent without a configuration: %v\n%s", err, stderr.String())
			}
		}
	})
	b.Run("floor", bwrapTrue)
}

// bwrapTrue is the floor of the start benchmarks: bwrap --unshare-all
// running /bin/true on a root like HostImage's, b.N times.
func bwrapTrue(b *testing.B) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		b.Fatalf("bwrap is missing (make bench installs Debian's bubblewrap): %v", err)
	}
	args := []string{"--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
		"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"}
	for _, d := range hostDirs[1:] {
		if target, err := os.Readlink("/" + d); err == nil {
			args = append(args, "--symlink", target, "/"+d)
		}
	}
	args = append(args, "/bin/true")
	for b.Loop() {
		if out, err := exec.Command(bwrap, args...).CombinedOutput(); err != nil {
			b.Fatalf("bwrap: %v\n%s", err, out)
		}
	}
}

// BenchmarkPoolStartRunClose: Pool.New + Command("true").Run + Close from
// a warm pool of two, beside bwrap. "sdk" takes sandboxes back to back, so
// the pool's refills compete with the loop for the CPUs; "paced" waits,
// off the clock, until the pool is full again before each iteration, as a
// caller that does not start sandboxes faster than the pool refills sees
// it.
func BenchmarkPoolStartRunClose(b *testing.B) {
	const size = 2
	pooled := func(b *testing.B, paced bool) {
		ctx := context.Background()
		p, err := NewPool(ctx, HostImage(), size, WithCacheDir(testCache))
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			b.StopTimer()
			p.Close()
		}()
		waitFor(b, "a full pool", func() bool { return p.Ready() == size })
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if paced {
				b.StopTimer()
				waitFor(b, "a full pool", func() bool { return p.Ready() == size })
				b.StartTimer()
			}
			if err := runTrueAndClose(p.New(ctx)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sdk", func(b *testing.B) { pooled(b, false) })
	b.Run("paced", func(b *testing.B) { pooled(b, true) })
	b.Run("floor", bwrapTrue)
}

// BenchmarkPoolNew: how long New takes to hand out a sandbox, from a warm
// pool with a spare ready ("sdk") and from sandbox.New ("floor"). Only the
// New call is timed (by hand, as ns/op): closing the sandbox and waiting
// for the pool to refill are not.
func BenchmarkPoolNew(b *testing.B) {
	ctx := context.Background()
	timed := func(b *testing.B, before func(), newInst func() (*Instance, error)) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			before()
			t := time.Now()
			inst, err := newInst()
			total += time.Since(t)
			if err != nil {
				b.Fatal(err)
			}
			if err := inst.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	}
	b.Run("sdk", func(b *testing.B) {
		p, err := NewPool(ctx, HostImage(), 1, WithCacheDir(testCache))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		timed(b, func() { waitFor(b, "a spare", func() bool { return p.Ready() == 1 }) }, func() (*Instance, error) { return p.New(ctx) })
	})
	b.Run("floor", func(b *testing.B) {
		timed(b, func() {}, func() (*Instance, error) { return New(ctx, HostImage(), WithCacheDir(testCache)) })
	})
}

// BenchmarkStartHardening: New + Command("true").Run + Close with the
// hardening on (seccomp filter, capability cut, masked paths), beside the
// same with the filter and the capability cut off.
func BenchmarkStartHardening(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []Option
	}{{"sdk", nil}, {"floor", []Option{withoutConfinement()}}} {
		b.Run(c.name, func(b *testing.B) {
			opts := append([]Option{WithCacheDir(testCache)}, c.opts...)
			startRunClose(b, HostImage(), opts...)
		})
	}
}

// startRunClose is the loop of the start benchmarks: New(src, opts...),
// Command("true").Run and Close, b.N times.
func startRunClose(b *testing.B, src Source, opts ...Option) {
	b.Helper()
	ctx := context.Background()
	for b.Loop() {
		if err := runTrueAndClose(New(ctx, src, opts...)); err != nil {
			b.Fatal(err)
		}
	}
}

// runTrueAndClose runs Command("true") in the sandbox a New call returned
// and closes it; it returns the first error, New's included.
func runTrueAndClose(inst *Instance, err error) error {
	if err != nil {
		return err
	}
	err = inst.Command("true").Run()
	if cerr := inst.Close(); err == nil {
		err = cerr
	}
	return err
}

// withoutConfinement starts a sandbox with no seccomp filter and no
// capability cut, for measuring what they cost; tests only.
func withoutConfinement() Option {
	return instanceOption(func(o *newOptions) error {
		o.unconfined = true
		return nil
	})
}

// BenchmarkCommandRoundTrip: Command("true").Run in a running sandbox,
// beside exec.Command("true").Run on the host.
func BenchmarkCommandRoundTrip(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		inst := hostInstance(b)
		for b.Loop() {
			if err := inst.Command("true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStat: Stat of a file in a sandbox, beside an empty call to the
// sandbox's agent over the same client.
func BenchmarkStat(b *testing.B) {
	inst := hostInstance(b)
	inst.WriteFile("/tmp/f", []byte("x"), 0o644)
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if _, err := inst.Stat("/tmp/f"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		// The emptiest call: the agent answers that it runs.
		for b.Loop() {
			if _, err := inst.agent.Client().Call(ipc.MsgInstanceIsRunning, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

const bulkSize = 100 << 20

// BenchmarkReadFile100MB: ReadFile of 100 MB from a sandbox, beside
// os.ReadFile of the same file on the host's disk.
func BenchmarkReadFile100MB(b *testing.B) {
	data := make([]byte, bulkSize)
	rand.Read(data)
	b.Run("sdk", func(b *testing.B) {
		inst := hostInstance(b)
		if err := inst.WriteFile("/tmp/big", data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(bulkSize)
		for b.Loop() {
			got, err := inst.ReadFile("tmp/big")
			if err != nil || len(got) != bulkSize {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		p := filepath.Join(testCache, "big")
		defer os.Remove(p)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(bulkSize)
		for b.Loop() {
			got, err := os.ReadFile(p)
			if err != nil || len(got) != bulkSize {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteFile100MB: WriteFile of 100 MB into a sandbox, beside
// os.WriteFile on the host's disk (the same file system as the sandbox's
// writable layer).
func BenchmarkWriteFile100MB(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), bulkSize/16)
	b.Run("sdk", func(b *testing.B) {
		inst := hostInstance(b)
		b.SetBytes(bulkSize)
		for b.Loop() {
			if err := inst.WriteFile("/tmp/big", data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		p := filepath.Join(testCache, "big")
		defer os.Remove(p)
		b.SetBytes(bulkSize)
		for b.Loop() {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
}
