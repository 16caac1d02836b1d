package sandbox

import (
	"crypto/rand"
	"testing"

	"github.com/ccsandbox/sandbox/internal/helper"
)

// BenchmarkHelper runs the same operations on a sandbox started through a
// helper process (sdk; CC_USE_HELPER=1, with the agent's channel handed to
// the client as it is by default) and on one started in process (floor),
// in the same run; "proxied" forces every call through the helper, the
// path a client that cannot receive descriptors takes.
func BenchmarkHelper(b *testing.B) {
	big := make([]byte, bulkSize)
	rand.Read(big)
	type op struct {
		name  string
		bytes int64
		run   func(b *testing.B, inst *Instance) // sets up, then runs the loop
	}
	ops := []op{
		{"CommandRoundTrip", 0, func(b *testing.B, inst *Instance) {
			for b.Loop() {
				if err := inst.Command("true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"Stat", 0, func(b *testing.B, inst *Instance) {
			if err := inst.WriteFile("/tmp/f", []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := inst.Stat("/tmp/f"); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"ReadFile100MB", bulkSize, func(b *testing.B, inst *Instance) {
			if err := inst.WriteFile("/tmp/big", big, 0o644); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if got, err := inst.ReadFile("tmp/big"); err != nil || len(got) != bulkSize {
					b.Fatal(err)
				}
			}
		}},
		{"ConnTransfer1GB", transferSize, func(b *testing.B, inst *Instance) {
			c1, c2 := sandboxPair(b, inst)
			defer c1.Close()
			defer c2.Close()
			for b.Loop() {
				transfer(b, c1, c2, transferSize)
			}
		}},
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			for _, mode := range []string{"sdk", "floor", "proxied"} {
				b.Run(mode, func(b *testing.B) {
					if mode != "floor" {
						withHelper(b, mode == "proxied")
					}
					inst := hostInstance(b)
					if _, remote := inst.runner.(*helper.Remote); remote != (mode != "floor") {
						b.Fatalf("%s: the sandbox runs in the wrong place", mode)
					}
					b.SetBytes(o.bytes)
					o.run(b, inst)
				})
			}
		})
	}
}
