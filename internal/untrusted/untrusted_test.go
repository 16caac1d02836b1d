package untrusted

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree makes a tree like a sandbox's: a directory, a file, a symlink to a
// host directory holding a secret, and returns the tree and that secret.
func tree(t *testing.T) (root, hostDir string, secret []byte) {
	t.Helper()
	base := t.TempDir()
	hostDir = filepath.Join(base, "host")
	root = filepath.Join(base, "upper")
	secret = []byte("host secret " + t.Name())
	for _, d := range []string{hostDir, root + "/x/d"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(hostDir, "SECRET"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root+"/x/d/SECRET", []byte("decoy"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(hostDir, root+"/x/l"); err != nil {
		t.Fatal(err)
	}
	return root, hostDir, secret
}

// walk reads every file below d the way a snapshot does and returns what
// the files held, one after another.
func walk(d *Dir, out *bytes.Buffer) error {
	names, err := d.Names()
	if err != nil {
		return err
	}
	for _, name := range names {
		n, err := d.Lookup(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		switch n.Type() {
		case unix.S_IFDIR:
			sub, err := n.OpenDir()
			if err == nil {
				err = walk(sub, out)
				sub.Close()
			}
			if err != nil {
				n.Close()
				return err
			}
		case unix.S_IFREG:
			f, err := n.Open()
			if err != nil {
				n.Close()
				return err
			}
			io.Copy(out, f)
			f.Close()
		case unix.S_IFLNK:
			target, err := n.Readlink()
			if err != nil {
				n.Close()
				return err
			}
			out.WriteString("->" + target)
		}
		n.Close()
	}
	return nil
}

func TestLookupFollowsNoLink(t *testing.T) {
	root, hostDir, secret := tree(t)
	if err := unix.Setxattr(filepath.Join(hostDir, "SECRET"), "user.secret", []byte("x"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(hostDir, "SECRET"), root+"/x/file-link")
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, bad := range []string{"", ".", "..", "x/d", "/x", "x/../x"} {
		if n, err := d.Lookup(bad); err == nil {
			n.Close()
			t.Errorf("Lookup(%q) worked, want an error", bad)
		}
	}
	xn, err := d.Lookup("x")
	if err != nil {
		t.Fatal(err)
	}
	defer xn.Close()
	x, err := xn.OpenDir()
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Path() != "/x" {
		t.Errorf("Path %q, want /x", x.Path())
	}
	l, err := x.Lookup("l")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Type() != unix.S_IFLNK {
		t.Fatalf("a symlink looked up as type %o", l.Type())
	}
	if _, err := l.OpenDir(); err == nil {
		t.Error("OpenDir of a symlink to a directory worked")
	}
	if target, err := l.Readlink(); err != nil || target != hostDir {
		t.Errorf("Readlink: %q %v", target, err)
	}
	fl, err := x.Lookup("file-link")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := fl.Open(); err == nil {
		t.Error("Open of a symlink to a file worked")
	}
	if xs, err := fl.Xattrs(func(string) bool { return true }); err != nil || len(xs) != 0 {
		t.Errorf("a symlink's xattrs are its target's: %v %v", xs, err)
	}
	var out bytes.Buffer
	if err := walk(d, &out); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out.Bytes(), secret) {
		t.Fatal("the walk read the host's secret")
	}
	if !bytes.Contains(out.Bytes(), []byte("decoy")) {
		t.Fatalf("the walk missed the tree's own file: %q", out.String())
	}
}

// TestWalkRace plays a sandbox that swaps a directory and a symlink to a
// host directory as fast as it can while the host walks its tree.
func TestWalkRace(t *testing.T) {
	root, _, secret := tree(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			unix.Renameat2(unix.AT_FDCWD, root+"/x/d", unix.AT_FDCWD, root+"/x/l", unix.RENAME_EXCHANGE)
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	walks, sawLink, sawDir := 0, 0, 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); walks++ {
		d, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = walk(d, &out)
		d.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.EINVAL) {
			t.Fatalf("walk %d: %v", walks, err)
		}
		if bytes.Contains(out.Bytes(), secret) {
			t.Fatalf("walk %d read the host's secret", walks)
		}
		if bytes.Contains(out.Bytes(), []byte("decoy")) {
			sawDir++
		}
		if bytes.Contains(out.Bytes(), []byte("->")) {
			sawLink++
		}
	}
	t.Logf("%d walks: the directory seen in %d, the link in %d", walks, sawDir, sawLink)
	if sawDir == 0 {
		t.Error("no walk saw the directory: the race did not run")
	}
}

func TestRemoveAllLockedDirs(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(locked, "f"), []byte("x"), 0o644)
	os.Chmod(locked, 0)
	os.Chmod(filepath.Join(dir, "a"), 0o500)
	if err := RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatalf("tree still there: %v", err)
	}
	if err := RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Errorf("RemoveAll of a missing tree: %v", err)
	}
}

func TestRemoveAllDeep(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Deeper than PATH_MAX allows by name, made one level at a time.
	for i := 0; i < 3000; i++ {
		if err := unix.Mkdirat(fd, "dd", 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, "dd", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
	if err := RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("tree still there: %v", err)
	}
}

// TestRemoveAllRace removes a tree while a sandbox swaps one of its
// directories with a symlink to a host directory: the host directory
// survives, whatever the timing.
func TestRemoveAllRace(t *testing.T) {
	for i := 0; i < 50; i++ {
		root, hostDir, _ := tree(t)
		for j := 0; j < 20; j++ {
			os.WriteFile(filepath.Join(root, "x", "d", "f"+string(rune('a'+j))), nil, 0o644)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				unix.Renameat2(unix.AT_FDCWD, root+"/x/d", unix.AT_FDCWD, root+"/x/l", unix.RENAME_EXCHANGE)
			}
		}()
		RemoveAll(root) // may fail while the swapper runs; must not reach out
		stop.Store(true)
		wg.Wait()
		if _, err := os.Stat(filepath.Join(hostDir, "SECRET")); err != nil {
			t.Fatalf("round %d: the host's file is gone: %v", i, err)
		}
		if err := RemoveAll(root); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRemoveAllSymlinkRoot(t *testing.T) {
	_, hostDir, _ := tree(t)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(hostDir, link)
	if err := RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "SECRET")); err != nil {
		t.Fatalf("RemoveAll of a symlink removed its target's files: %v", err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("the link is still there: %v", err)
	}
}
