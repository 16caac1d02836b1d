//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ccsandbox/sandbox/internal/untrusted"

	"github.com/ccsandbox/sandbox/internal/layertar"
	"golang.org/x/sys/unix"
)

// unprivilegedUser is the user TestUnpackUnprivileged's child runs as:
// nobody when the test runs as root, else the user running it.
func unprivilegedUser() int {
	if os.Geteuid() == 0 {
		return 65534
	}
	return os.Geteuid()
}

// TestUnpackUnprivileged unpacks and exports a layer as an unprivileged
// user (the test binary re-executed as nobody) and checks what the package
// doc says is kept and lost in that mode: owners go to the user.cc.owner
// xattr (not on symlinks), setuid/setgid bits and whiteouts stay, trusted
// and security xattrs are lost, and the export restores the owners.
func TestUnpackUnprivileged(t *testing.T) {
	check(t, "cc-image-unpriv-")
	nobody := unprivilegedUser()
	// Everything the child touches must be reachable by nobody.
	dir, err := os.MkdirTemp("", "cc-image-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { untrusted.RemoveAll(dir) }) // ro/ is read-only for a non-root run
	os.Chmod(dir, 0o755)
	exe, _ := os.Executable()
	bin := filepath.Join(dir, "image.test")
	copyFile(t, exe, bin, 0o755)
	layer := filepath.Join(dir, "layer")
	os.Mkdir(layer, 0o755)
	os.Chown(layer, nobody, -1)
	exported := filepath.Join(dir, "export.tar")
	f, _ := os.Create(exported)
	f.Close()
	os.Chown(exported, nobody, -1)

	entries := []tarEntry{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "home/user/", Mode: 0o750, Uid: 1000, Gid: 1000, ModTime: epoch}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "home/user/f", Mode: 0o640, Uid: 1000, Gid: 50, Size: 1, ModTime: epoch,
			PAXRecords: map[string]string{"SCHILY.xattr.user.keep": "k", "SCHILY.xattr.trusted.lost": "l"}}, data: "x"},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/su", Mode: 0o4755, Size: 1, ModTime: epoch}, data: "x"},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "home/user/l", Linkname: "f", Uid: 1000, Gid: 1000, ModTime: epoch}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "ro/", Mode: 0o555, ModTime: epoch}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "ro/inside", Mode: 0o444, Size: 1, ModTime: epoch}, data: "x"},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: ".wh.gone", ModTime: epoch}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "opq/", Mode: 0o755, ModTime: epoch}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "opq/.wh..wh..opq", ModTime: epoch}},
	}
	tarPath := filepath.Join(dir, "layer.tar")
	os.WriteFile(tarPath, makeTar(t, entries...), 0o644)

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=unpack", "CC_TAR="+tarPath, "CC_DIR="+layer, "CC_EXPORT="+exported)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(nobody), Gid: uint32(nobody)}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	var st UnpackStats
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	// Lost: trusted.lost, and the owner of the symlink.
	if st.Lost != 2 {
		t.Errorf("lost %d xattrs or owners, want 2 (trusted.lost, the symlink's owner)", st.Lost)
	}
	for _, c := range []struct{ name, owner string }{
		{"home/user", "1000:1000"}, {"home/user/f", "1000:50"}, {"bin/su", ""}, {"home/user/l", ""},
	} {
		var s unix.Stat_t
		p := filepath.Join(layer, c.name)
		if err := unix.Lstat(p, &s); err != nil {
			t.Fatal(err)
		}
		if int(s.Uid) != nobody {
			t.Errorf("%s: owned by %d, want the user %d", c.name, s.Uid, nobody)
		}
		if got := getXattr(t, p, layertar.XattrOwner); got != c.owner {
			t.Errorf("%s: %s = %q, want %q", c.name, layertar.XattrOwner, got, c.owner)
		}
	}
	var s unix.Stat_t
	unix.Lstat(filepath.Join(layer, "bin/su"), &s)
	if s.Mode&0o7777 != 0o4755 {
		t.Errorf("bin/su mode %o, want 4755", s.Mode&0o7777)
	}
	unix.Lstat(filepath.Join(layer, "ro"), &s)
	if s.Mode&0o7777 != 0o555 {
		t.Errorf("ro mode %o, want 555 (applied after its contents)", s.Mode&0o7777)
	}
	unix.Lstat(filepath.Join(layer, "gone"), &s)
	if s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != 0 {
		t.Errorf("gone: not a 0/0 whiteout (mode %o rdev %d)", s.Mode, s.Rdev)
	}
	if v := getXattr(t, filepath.Join(layer, "opq"), layertar.XattrOpaque); v != "y" {
		t.Errorf("opq: opaque = %q", v)
	}
	if v := getXattr(t, filepath.Join(layer, "home/user/f"), "user.keep"); v != "k" {
		t.Errorf("user.keep = %q", v)
	}

	// The export gives the owners back, except the symlink's.
	data, _ := os.ReadFile(exported)
	got := readTar(t, data)
	for name, want := range map[string]string{
		"home/user/":       "dir 750 1000:1000",
		"home/user/f":      "file 640 1000:50 x user.keep=k",
		"home/user/l":      "symlink 777 0:0 ->f",
		"bin/su":           "file 4755 0:0 x",
		".wh.gone":         "file 600 0:0",
		"opq/.wh..wh..opq": "file 600 0:0",
	} {
		if got[name] != want {
			t.Errorf("exported %s = %q, want %q", name, got[name], want)
		}
	}
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
