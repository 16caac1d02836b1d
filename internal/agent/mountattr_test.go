package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// envMountChild makes this test binary the child of TestRestrictTree: it
// then runs in a user and mount namespace of its own, as the agent does.
const envMountChild = "CC_AGENT_TEST_MOUNT_CHILD"

// TestRestrictTree binds a tree of three mounts (a tmpfs, one below it, one
// below that) and restricts the bind both ways the agent can: with
// mount_setattr(AT_RECURSIVE), and with the fallback for kernels without
// it, which remounts each mount. Every level must carry the flags and
// refuse writes when read-only; the source stays as it was.
func TestRestrictTree(t *testing.T) {
	if os.Getenv(envMountChild) == "1" {
		restrictTreeChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestrictTree$", "-test.v")
	cmd.Env = append(os.Environ(), envMountChild+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child in its own namespaces: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func restrictTreeChild(t *testing.T) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(base, unix.MNT_DETACH)
	src := filepath.Join(base, "src")
	for _, d := range []string{"", "sub", "sub/deeper"} {
		dir := filepath.Join(src, d)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if d != "" {
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
				t.Fatal(err)
			}
		}
	}
	levels := []string{"", "sub", "sub/deeper"}
	for i, c := range []struct {
		name     string
		attr     uint64
		restrict func(int, uint64) error
	}{
		{"mount_setattr, read-only", readOnlyAttr, restrictTree},
		{"remounts, read-only", readOnlyAttr, remountTree},
		{"mount_setattr, writable", writableAttr, restrictTree},
		{"remounts, writable", writableAttr, remountTree},
	} {
		dst := filepath.Join(base, "dst"+strconv.Itoa(i))
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(dst, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = c.restrict(fd, c.attr)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, l := range levels {
			dir := filepath.Join(dst, l)
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err != nil {
				t.Fatal(err)
			}
			want := int64(unix.ST_NOSUID | unix.ST_NODEV)
			if c.attr&unix.MOUNT_ATTR_RDONLY != 0 {
				want |= unix.ST_RDONLY
			}
			if st.Flags&want != want {
				t.Errorf("%s: %s has flags %#x, want %#x set", c.name, dir, st.Flags, want)
			}
			err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
			if ro := c.attr&unix.MOUNT_ATTR_RDONLY != 0; ro != errors.Is(err, unix.EROFS) {
				t.Errorf("%s: writing in %s: %v", c.name, dir, err)
			}
		}
	}
	for _, l := range levels {
		if err := os.WriteFile(filepath.Join(src, l, "still-writable"), nil, 0o644); err != nil {
			t.Errorf("the source of the binds: %v", err)
		}
	}
}
