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

// TestStoreRootOfAnotherUser: a cache directory in a shared place
// (CC_CACHE_DIR=/tmp/cc-cache, a helper's -store) that another host user
// made first, or planted as a symlink (to a directory of root's, to be
// made private and filled), or in a directory others may change, is
// refused with an error that says why, and what it names is unchanged. A
// symlink of the user's own to a directory of theirs still works.
func TestStoreRootOfAnotherUser(t *testing.T) {
	const nobody = 65534
	open := func(dir string) error {
		_, err := DiskUsage(context.Background(), WithCacheDir(dir))
		return err
	}
	shared := func(t *testing.T) string { // a sticky directory all may write, as /tmp
		dir := t.TempDir()
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	asRoot := func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("playing another host user needs root; the race phase runs this as root")
		}
	}
	t.Run("their directory", func(t *testing.T) {
		asRoot(t)
		cache := filepath.Join(shared(t), "cc-cache")
		if err := os.Mkdir(cache, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(cache, 0o777)
		if err := os.Chown(cache, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		err := open(cache)
		if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("opening a store of uid %d: %v, want refused", nobody, err)
		}
		if ents, _ := os.ReadDir(cache); len(ents) != 0 {
			t.Errorf("the refused store was filled: %v", ents)
		}
	})
	t.Run("their symlink", func(t *testing.T) {
		asRoot(t)
		victim := filepath.Join(t.TempDir(), "victim") // root's, as /etc is
		if err := os.Mkdir(victim, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(victim, 0o755)
		cache := filepath.Join(shared(t), "cc-cache")
		if err := os.Symlink(victim, cache); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(cache, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		err := open(cache)
		if err == nil || !strings.Contains(err.Error(), "symlink of uid 65534") {
			t.Errorf("opening a store through a symlink of uid %d: %v, want refused", nobody, err)
		}
		fi, err := os.Stat(victim)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("the symlink's target: %v, %v; want mode 0755, as it was", fi, err)
		}
		if ents, _ := os.ReadDir(victim); len(ents) != 0 {
			t.Errorf("the symlink's target was filled: %v", ents)
		}
	})
	t.Run("their symlink above it", func(t *testing.T) {
		asRoot(t)
		varDir := filepath.Join(t.TempDir(), "var") // root's, as /var is
		victim := filepath.Join(varDir, "cache")    // root's, as /var/cache is
		if err := os.MkdirAll(victim, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(varDir, 0o755)
		os.Chmod(victim, 0o755)
		link := filepath.Join(shared(t), "ci") // CC_CACHE_DIR=/tmp/ci/cache
		if err := os.Symlink(varDir, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		err := open(filepath.Join(link, "cache"))
		if err == nil || !strings.Contains(err.Error(), "symlink of uid 65534") {
			t.Errorf("opening a store below a symlink of uid %d: %v, want refused", nobody, err)
		}
		if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("the symlink's target's cache: %v, %v; want mode 0755, as it was", fi, err)
		}
		if ents, _ := os.ReadDir(victim); len(ents) != 0 {
			t.Errorf("the symlink's target's cache was filled: %v", ents)
		}
	})
	t.Run("their directory above it", func(t *testing.T) {
		asRoot(t)
		theirs := filepath.Join(t.TempDir(), "srv")
		if err := os.Mkdir(theirs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		mine := filepath.Join(theirs, "area") // theirs to rename away and replace
		if err := os.Mkdir(mine, 0o755); err != nil {
			t.Fatal(err)
		}
		err := open(filepath.Join(mine, "cache"))
		if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("opening a store below a directory of uid %d: %v, want refused", nobody, err)
		}
	})
	t.Run("their link raced in", func(t *testing.T) {
		asRoot(t)
		victim := filepath.Join(t.TempDir(), "victim") // root's
		if err := os.Mkdir(victim, 0o755); err != nil {
			t.Fatal(err)
		}
		dir := shared(t)
		staging, cache := filepath.Join(dir, "staging"), filepath.Join(dir, "cc-cache")
		if err := os.Symlink(victim, staging); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(staging, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { // the other user flips the link in and out of place
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				os.Rename(staging, cache)
				os.Rename(cache, staging)
			}
		}()
		for try := 0; try < 500; try++ {
			err := open(cache)
			if ents, _ := os.ReadDir(victim); len(ents) != 0 {
				t.Errorf("try %d (%v): the link's target was filled: %v", try, err, ents)
				break
			}
			if fi, lerr := os.Lstat(cache); err == nil && lerr == nil && fi.IsDir() {
				os.RemoveAll(cache) // a store of root's own was made: again
			}
		}
		close(stop)
		<-done
	})
	t.Run("own group-writable directory", func(t *testing.T) {
		cacheHome := filepath.Join(t.TempDir(), ".cache") // umask 002 with per-user groups
		if err := os.Mkdir(cacheHome, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cacheHome, 0o775); err != nil {
			t.Fatal(err)
		}
		if err := open(filepath.Join(cacheHome, "cc")); err != nil {
			t.Errorf("a store in the user's own ~/.cache of mode 0775, its group the user's own: %v", err)
		}
		if os.Geteuid() == 0 {
			other := filepath.Join(t.TempDir(), ".cache")
			os.Mkdir(other, 0o700)
			os.Chmod(other, 0o775)
			os.Chown(other, 0, 1234) // a group of others
			if err := open(filepath.Join(other, "cc")); err == nil || !strings.Contains(err.Error(), "can be changed by other users") {
				t.Errorf("a store in a directory of mode 0775 of another group: %v, want refused", err)
			}
		}
	})
	t.Run("a directory others may change", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o777); err != nil { // not sticky
			t.Fatal(err)
		}
		err := open(filepath.Join(dir, "cc-cache"))
		if err == nil || !strings.Contains(err.Error(), "can be changed by other users") {
			t.Errorf("opening a store in a directory of mode 0777: %v, want refused", err)
		}
	})
	t.Run("own symlink", func(t *testing.T) {
		dir := t.TempDir()
		real := filepath.Join(dir, "real")
		if err := os.Mkdir(real, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if err := open(filepath.Join(dir, "link")); err != nil {
			t.Errorf("opening a store through the user's own symlink: %v", err)
		}
		if _, err := os.Stat(filepath.Join(real, "store.json")); err != nil {
			t.Errorf("the store was not made in the symlink's target: %v", err)
		}
	})
}
