package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadOnlyMount binds a host directory read-only, with (as root, who
// can make them) a tmpfs mounted below it and another below that, and
// tries to write to every level from inside and through the host API:
// each write fails with EROFS and nothing appears on the host. Every host
// mount, writable ones too, is nosuid and nodev all the way down, and a
// setuid program on a writable mount gives no privilege. It runs on gVisor
// too, where each host directory is bound as one mount (bindAlone).
func TestReadOnlyMount(t *testing.T) {
	hostDir := t.TempDir()
	os.Chmod(hostDir, 0o777) // writable by the sandbox's root, were the mount not read-only
	levels := []string{""}
	if os.Geteuid() == 0 {
		levels = append(levels, "sub", "sub/deeper")
		for _, l := range levels[1:] {
			dir := filepath.Join(hostDir, l)
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0777,size=1m"); err != nil {
				t.Fatalf("mounting a tmpfs under the host directory: %v", err)
			}
			t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		}
	}
	for _, l := range levels {
		if err := os.WriteFile(filepath.Join(hostDir, l, "host.txt"), []byte("host"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	hostFiles := listTree(t, hostDir)
	rwDir := t.TempDir()
	os.Chmod(rwDir, 0o777)

	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, append(mode.opts, WithMount(hostDir, "/ro"), WithWritableMount(rwDir, "/rw"))...)
			for _, l := range levels {
				dir := filepath.Join("/ro", l)
				out, err := inst.Command("touch", dir+"/x-inside").CombinedOutput()
				if err == nil || !strings.Contains(string(out), "Read-only file system") {
					t.Errorf("touch %s/x-inside in the sandbox: %v %q, want a read-only file system", dir, err, out)
				}
				for _, c := range []struct {
					op  string
					err error
				}{
					{"WriteFile", inst.WriteFile(dir+"/api.txt", []byte("api"), 0o644)},
					{"WriteFile over a file", inst.WriteFile(dir+"/host.txt", []byte("api"), 0o644)},
					{"Mkdir", inst.Mkdir(dir+"/newdir", 0o755)},
					{"Symlink", inst.Symlink("/", dir+"/link")},
					{"Chmod", inst.Chmod(dir+"/host.txt", 0o777)},
					{"Remove", inst.Remove(dir + "/host.txt")},
					{"Rename", inst.Rename(dir+"/host.txt", dir+"/moved.txt")},
				} {
					if !errors.Is(c.err, syscall.EROFS) {
						t.Errorf("%s in %s: %v, want EROFS", c.op, dir, c.err)
					}
				}
			}
			mounts := len(levels)
			if os.Getenv("CC_BACKEND") == string(BackendGVisor) {
				// gVisor's gofer shows the host's mounts below a bound
				// directory as directories of that one mount; the writes
				// above reached every level all the same.
				mounts = 1
			}
			checkMountFlags(t, run(t, inst, "cat /proc/self/mountinfo"), mounts)
			if os.Geteuid() == 0 {
				// A setuid-root program on the writable mount, run by
				// another user, stays that user.
				run(t, inst, "cp /usr/bin/id /rw/id && chown 0:0 /rw/id && chmod 4755 /rw/id")
				cmd := inst.Command("/rw/id", "-u")
				cmd.User = "1000"
				out, err := cmd.CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "1000" {
					t.Errorf("a setuid-root program on the writable mount, run by uid 1000: %q %v", out, err)
				}
			}
		})
	}
	if got := listTree(t, hostDir); !slices.Equal(got, hostFiles) {
		t.Errorf("the read-only host directory changed:\n%v\nwas\n%v", got, hostFiles)
	}
}

// checkMountFlags checks the sandbox's mount table: every mount at /ro or
// below it is ro, nosuid and nodev, /rw is nosuid and nodev, and /ro has
// want mounts in all.
func checkMountFlags(t *testing.T, mountinfo string, want int) {
	t.Helper()
	found := 0
	for _, line := range strings.Split(mountinfo, "\n") {
		// id parent major:minor root mountpoint options ...
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		point, opts := f[4], strings.Split(f[5], ",")
		need := []string{"nosuid", "nodev"}
		switch {
		case point == "/ro" || strings.HasPrefix(point, "/ro/"):
			found++
			need = append(need, "ro")
		case point == "/rw":
		default:
			continue
		}
		for _, o := range need {
			if !slices.Contains(opts, o) {
				t.Errorf("the mount at %s is %s, not %s", point, f[5], o)
			}
		}
	}
	if found != want {
		t.Errorf("%d mounts at /ro and below, want %d:\n%s", found, want, mountinfo)
	}
}

// listTree returns the paths of every file and directory below dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, strings.TrimPrefix(p, dir))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
