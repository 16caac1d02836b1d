//go:build unix

package fsutil

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFileMode: the conversion agrees with os.Lstat on real files.
func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	os.Chmod(file, 0o755|fs.ModeSetuid|fs.ModeSetgid)
	os.Chmod(dir, 0o755|fs.ModeSticky)
	os.Symlink("f", filepath.Join(dir, "l"))
	unix.Mkfifo(filepath.Join(dir, "p"), 0o600)
	for _, p := range []string{dir, file, filepath.Join(dir, "l"), filepath.Join(dir, "p"), "/dev/null"} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if p == file && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != fs.ModeSetuid|fs.ModeSetgid {
			t.Fatalf("setup: %s has mode %v", p, fi.Mode())
		}
		if got := FileMode(uint32(st.Mode)); got != fi.Mode() {
			t.Errorf("%s: FileMode = %v, os.Lstat says %v", p, got, fi.Mode())
		}
	}
}

// TestUnixPerm: the permission bits and setuid, setgid and sticky go to
// st_mode's and back through FileMode unchanged; the type is left out.
func TestUnixPerm(t *testing.T) {
	for _, m := range []fs.FileMode{0, 0o644, 0o755 | fs.ModeSetuid, 0o750 | fs.ModeSetgid, 0o777 | fs.ModeSticky,
		0o777 | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky} {
		if got := FileMode(UnixPerm(m)); got != m {
			t.Errorf("FileMode(UnixPerm(%v)) = %v", m, got)
		}
	}
	if got, want := UnixPerm(fs.ModeDir|fs.ModeSetuid|0o700), uint32(unix.S_ISUID|0o700); got != want {
		t.Errorf("UnixPerm(dir, setuid, 0700) = %#o, want %#o", got, want)
	}
}
