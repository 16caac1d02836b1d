package sandbox

import "testing"

// VM benchmarks: "sdk" is the VM backend, "floor" the namespace backend
// doing the same work in the same run (scripts/benchratio prints the
// ratio). Under TCG (no usable /dev/kvm) a boot takes seconds.

// BenchmarkVMBootToCommand: New + Command("true").Run + Close of the host
// image: boot to first command.
func BenchmarkVMBootToCommand(b *testing.B) {
	for _, bc := range []struct {
		name    string
		backend Backend
	}{{"sdk", BackendVM}, {"floor", BackendNamespaces}} {
		b.Run(bc.name, func(b *testing.B) {
			startRunClose(b, HostImage(), WithCacheDir(testCache), WithBackend(bc.backend))
		})
	}
}

// BenchmarkVMCommandRoundTrip: Command("true").Run in a running sandbox.
func BenchmarkVMCommandRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name    string
		backend Backend
	}{{"sdk", BackendVM}, {"floor", BackendNamespaces}} {
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
