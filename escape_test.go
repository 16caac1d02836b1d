package sandbox

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPathEscape tries to reach a canary file on the host through every
// kind of path the file API and commands accept, and checks that no host
// file is read or written.
func TestPathEscape(t *testing.T) {
	secret := []byte("host secret")
	hostDir, canary := hostCanary(t, secret)
	depth := strings.Repeat("../", 20)

	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			// Symlinks made inside the sandbox, pointing the way out.
			links := map[string]string{
				"/abs":       canary,
				"/rel":       depth + strings.TrimPrefix(canary, "/"),
				"/dirlink":   hostDir,
				"/chain1":    "/chain2",
				"/chain2":    "/abs",
				"/loop1":     "/loop2",
				"/loop2":     "/loop1",
				"/dotdot":    "..",
				"/proc-root": "/proc/1/root" + canary,
			}
			for name, target := range links {
				if err := inst.Symlink(target, name); err != nil {
					t.Fatal(err)
				}
			}
			reads := []string{
				canary, "/abs", "/rel", "/dirlink/secret", "/chain1", "/loop1",
				"/dotdot/dotdot" + canary, "/proc-root", depth + canary[1:],
			}
			for _, p := range reads {
				b, err := inst.ReadFile(strings.TrimPrefix(p, "/"))
				if errors.Is(err, fs.ErrInvalid) {
					b, err = readOS(inst, p)
				}
				if bytes.Equal(b, secret) {
					t.Errorf("read the host canary through %q", p)
				}
				if err == nil {
					t.Errorf("reading %q succeeded with %q; nothing should be there", p, b)
				}
			}
			// Writes through the same paths land inside the sandbox, if anywhere.
			for _, p := range []string{"/abs", "/rel", "/dirlink/new", "/chain1", canary, depth + "tmp/escaped"} {
				inst.WriteFile(p, []byte("overwritten"), 0o644)
				inst.Rename("/abs", p+".renamed")
				inst.Chmod(p, 0o777)
			}
			if err := inst.Rename("/abs", depth+"tmp/renamed-out"); err == nil {
				if _, err := os.Lstat("/tmp/renamed-out"); err == nil {
					t.Error("rename moved a file to the host")
				}
			}
			// Commands see the same root.
			out, _ := inst.Command("cat", canary, "/abs", "/proc/1/root"+canary, "/proc/self/root"+canary).CombinedOutput()
			if bytes.Contains(out, secret) {
				t.Errorf("a command read the host canary: %q", out)
			}
		})
	}
	if b, _ := os.ReadFile(canary); !bytes.Equal(b, secret) {
		t.Errorf("the canary changed: %q", b)
	}
	entries, _ := os.ReadDir(hostDir)
	if len(entries) != 1 {
		t.Errorf("files appeared in the host directory: %v", entries)
	}
	fi, _ := os.Stat(canary)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("the canary's mode changed to %v", fi.Mode())
	}
	for _, p := range []string{"/tmp/escaped", "/tmp/renamed-out", "/abs"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s appeared on the host", p)
		}
	}
}

// hostCanary makes a host directory (removed after the test) holding one
// file, "secret", of secret, and returns both paths.
func hostCanary(t *testing.T, secret []byte) (dir, canary string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cc-canary-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	canary = filepath.Join(dir, "secret")
	if err := os.WriteFile(canary, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, canary
}

// readOS reads p with the os-style calls (which take any path).
func readOS(inst *Instance, p string) ([]byte, error) {
	f, err := inst.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 64)
	n, err := f.Read(buf)
	return buf[:n], err
}
