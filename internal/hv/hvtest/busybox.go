package hvtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// BusyboxLayer makes a layer directory with Debian's static busybox at
// /bin/busybox and /bin/sh, owned as both backends' layers are (by the
// sandbox root's host id when run as root): a Harness.BaseLayer.
func BusyboxLayer(t *testing.T) string {
	bin, err := os.ReadFile(testimage.BusyboxPath)
	if err != nil {
		t.Fatalf("%v: %v", testimage.ErrNoBusybox, err)
	}
	dir := filepath.Join(t.TempDir(), "layer")
	for _, d := range []string{"bin", "tmp", "proc", "dev", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
			return os.Lchown(p, idmap.RootBase, idmap.RootBase)
		})
	}
	return dir
}
