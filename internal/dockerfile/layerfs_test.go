package dockerfile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"golang.org/x/sys/unix"
)

// TestLayerFS checks the merged view of layer directories against what
// overlayfs shows: the highest layer decides, whiteouts hide, opaque
// directories stop the merge.
func TestLayerFS(t *testing.T) {
	root := t.TempDir()
	l0, l1, l2 := filepath.Join(root, "0"), filepath.Join(root, "1"), filepath.Join(root, "2")
	writeTree(t, l0, map[string]string{"etc/passwd": "old", "etc/group": "g", "bin/sh": "sh", "opq/a": "a", "gone/x": "x", "lib": "->usr/lib", "usr/lib/libc": "c"})
	writeTree(t, l1, map[string]string{"etc/passwd": "new", "opq/b": "b", "extra": "e"})
	writeTree(t, l2, map[string]string{"etc/new": "n"})
	if err := unix.Mknod(filepath.Join(l1, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Skipf("cannot make a whiteout here: %v", err)
	}
	if err := unix.Lsetxattr(filepath.Join(l1, "opq"), layertar.XattrOpaque, []byte("y"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	os.Mkdir(filepath.Join(l2, "opq"), 0o755)
	l := newLayerFS([]string{l0, l1, l2}, idmap.Current())

	for dir, want := range map[string][]string{
		"":    {"bin", "etc", "extra", "lib", "opq", "usr"},
		"etc": {"group", "new", "passwd"},
		"opq": {"b"},
	} {
		got, err := l.readDir(dir)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("readDir(%q) = %q, %v; want %q", dir, got, err, want)
		}
	}
	if b, err := l.readFile("/etc/passwd"); err != nil || string(b) != "new" {
		t.Errorf("/etc/passwd = %q, %v", b, err)
	}
	if b, err := l.readFile("/lib/libc"); err != nil || string(b) != "c" {
		t.Errorf("/lib/libc through a symlink = %q, %v", b, err)
	}
	if _, err := l.lstat("gone/x"); err == nil {
		t.Error("a whiteout did not hide gone/")
	}
	if _, err := l.lstat("opq/a"); err == nil {
		t.Error("an opaque directory did not hide a lower entry")
	}
}

func TestResolveChown(t *testing.T) {
	l := newLayerFS([]string{t.TempDir()}, idmap.Current())
	writeTree(t, l.dirs[0], map[string]string{
		"etc/passwd": "root:x:0:0::/root:/bin/sh\nuser:x:1000:1001::/home/user:/bin/sh\n",
		"etc/group":  "root:x:0:\nstaff:x:50:\n",
	})
	for spec, want := range map[string]owner{
		"user":       {1000, 1001},
		"user:staff": {1000, 50},
		"42":         {42, 42},
		"42:7":       {42, 7},
		"root:staff": {0, 50},
	} {
		if got, err := resolveChown(spec, l); err != nil || got != want {
			t.Errorf("resolveChown(%q) = %v, %v; want %v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"nobody", "user:nogroup", ":1", "1:", "-1"} {
		if _, err := resolveChown(bad, l); err == nil {
			t.Errorf("resolveChown(%q) accepted", bad)
		}
	}
}

// TestLayerFSReadFileBounded: a file the builder reads itself (a
// user's /etc/passwd, looked up for --chown or USER) is read only up to
// maxReadFile: an image with a gigabyte of /etc/passwd gets an error,
// not a gigabyte of the builder's memory.
func TestLayerFSReadFileBounded(t *testing.T) {
	l0 := t.TempDir()
	writeTree(t, l0, map[string]string{"etc/group": "staff:x:50:\n"})
	f, err := os.Create(filepath.Join(l0, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("app:x:1000:1000::/home/app:/bin/sh\n")
	if err := f.Truncate(1 << 30); err != nil { // sparse: a gigabyte that takes no disk
		t.Fatal(err)
	}
	f.Close()
	l := newLayerFS([]string{l0}, idmap.Current())
	if _, err := resolveChown("app:staff", l); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("--chown with a gigabyte of /etc/passwd: %v", err)
	}
	if o, err := resolveChown("1000:staff", l); err != nil || o.gid != 50 {
		t.Errorf("--chown 1000:staff: %+v, %v", o, err)
	}
}
