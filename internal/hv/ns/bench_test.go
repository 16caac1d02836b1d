package ns

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// BenchmarkStartCgroup: Start, connect and Stop of a busybox sandbox with
// its always-on cgroup (the freezer's; made, the agent cloned into it,
// removed), beside the same without any cgroup.
func BenchmarkStartCgroup(b *testing.B) {
	layer := benchLayer(b)
	for _, c := range []struct {
		name string
		be   Backend
	}{{"sdk", Backend{}}, {"floor", Backend{cgroups: cgroupNone}}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				state, err := os.MkdirTemp("", "cc-bench-state-")
				if err != nil {
					b.Fatal(err)
				}
				if os.Geteuid() == 0 {
					os.Chown(state, idmap.RootBase, idmap.RootBase)
				}
				sb, err := c.be.Start(ctx, &hv.Config{ID: filepath.Base(state), StateDir: state, Layers: []string{layer}, Hostname: "b", IDMap: idmap.Current()})
				if err != nil {
					b.Fatal(err)
				}
				cl, err := ipc.Connect(ctx, sb.Dial)
				if err != nil {
					b.Fatal(err)
				}
				cl.Close()
				if err := sb.Stop(); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(state)
			}
		})
	}
}

// benchLayer makes a layer with a static busybox as /bin/sh.
func benchLayer(b *testing.B) string {
	bin, err := os.ReadFile(testimage.BusyboxPath)
	if err != nil {
		b.Fatalf("%v: %v", testimage.ErrNoBusybox, err)
	}
	dir := filepath.Join(b.TempDir(), "layer")
	for _, d := range []string{"bin", "tmp", "proc", "dev", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bin, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin", "sh")); err != nil {
		b.Fatal(err)
	}
	if os.Geteuid() == 0 {
		filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
			return os.Lchown(p, idmap.RootBase, idmap.RootBase)
		})
	}
	return dir
}
