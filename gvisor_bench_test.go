//go:build gvisor

package sandbox

import (
	"bytes"
	"os/exec"
	"testing"
)

// gVisor benchmarks (make bench-gvisor: tag gvisor, CGO_ENABLED=0, the
// test binary is runsc too): "sdk" is the gVisor backend, "floor" what it
// is compared with in the same run (scripts/benchratio prints the ratio).

// BenchmarkGVisorStartRunClose: New + Command("true").Run + Close of the
// host image on gVisor, against runsc doing the same work by itself:
// runsc --network=none do /bin/true, with the same runsc (this binary).
func BenchmarkGVisorStartRunClose(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		startRunClose(b, HostImage(), WithCacheDir(testCache), WithBackend(BackendGVisor))
	})
	b.Run("floor", func(b *testing.B) {
		for b.Loop() {
			cmd := exec.Command("/proc/self/exe", "--network=none", "do", "/bin/true")
			cmd.Args[0] = "runsc" // the role (see gvisor.IsRunsc)
			cmd.Dir = b.TempDir()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("runsc do: %v\n%s", err, out)
			}
		}
	})
}

// BenchmarkGVisorCommandRoundTrip: Command("true").Run in a running
// sandbox, against the namespace backend's.
func BenchmarkGVisorCommandRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name    string
		backend Backend
	}{{"sdk", BackendGVisor}, {"floor", BackendNamespaces}} {
		b.Run(bc.name, func(b *testing.B) {
			inst := hostInstance(b, WithBackend(bc.backend))
			for b.Loop() {
				if err := inst.Command("true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGVisorWriteFile and BenchmarkGVisorReadFile: 100 MB through
// WriteFile and ReadFile, against the namespace backend's.
func BenchmarkGVisorWriteFile(b *testing.B) { benchFile100(b, false) }
func BenchmarkGVisorReadFile(b *testing.B)  { benchFile100(b, true) }

func benchFile100(b *testing.B, read bool) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 100<<20/16)
	for _, bc := range []struct {
		name    string
		backend Backend
	}{{"sdk", BackendGVisor}, {"floor", BackendNamespaces}} {
		b.Run(bc.name, func(b *testing.B) {
			inst := hostInstance(b, WithBackend(bc.backend))
			if err := inst.WriteFile("/tmp/f", data, 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if read {
					got, err := inst.ReadFile("tmp/f")
					if err != nil || len(got) != len(data) {
						b.Fatalf("ReadFile: %d bytes, %v", len(got), err)
					}
				} else if err := inst.WriteFile("/tmp/f", data, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
