package sandbox

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// TestStorePrivate: an image's setuid file keeps its bit inside the
// sandbox, but the store holding it (and the sandboxes' writable layers)
// is private to its owner, so no other host user can run it as the id
// that owns it there.
func TestStorePrivate(t *testing.T) {
	// A cache directory others can reach, as ~/.cache often is.
	tmp := t.TempDir()
	cache := filepath.Join(tmp, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{tmp, filepath.Dir(tmp)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := loadInStore(t, src, cache)
	snap, err := Build(context.Background(), []byte("FROM busybox\nRUN cp /bin/busybox /suid && chmod 4755 /suid\n"),
		WithBuildSource("busybox", base), WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	inst := newInstance(t, snap, WithCacheDir(cache))
	fi, err := inst.Stat("/suid")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("/suid inside: mode %v, want setuid", fi.Mode())
	}
	for _, dir := range []string{cache, filepath.Join(cache, "instances")} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for others", dir, fi.Mode().Perm())
		}
	}
	// The setuid copy in the store, found as its owner finds it.
	var suid string
	filepath.WalkDir(filepath.Join(cache, "layers"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "suid" {
			if fi, err := d.Info(); err == nil && fi.Mode()&fs.ModeSetuid != 0 {
				suid = p
			}
		}
		return nil
	})
	if suid == "" {
		t.Fatal("no setuid file in the store")
	}
	if os.Geteuid() == 0 {
		// Another host user (nobody) cannot reach it.
		cmd := exec.Command(suid)
		cmd.Args = []string{"id", "-u"} // busybox's id: the effective uid
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("user nobody reached and ran the store's setuid file %s (it printed %q)", suid, out)
		}
		if !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("user nobody running %s: %v %s, want permission denied", suid, err, out)
		}
	}
}
