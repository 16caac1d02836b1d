package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRemoveAllRoot: RemoveAll refuses every spelling of the sandbox's root
// (the agent's guard works on what a path resolves to, not on its text),
// and a canary in the sandbox and one on a writable host mount survive.
// Symlinks the sandbox made lead to the root too; RemoveAll of the link
// itself removes the link only.
func TestRemoveAllRoot(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			hostDir := t.TempDir()
			os.Chmod(hostDir, 0o777) // removable by the sandbox's root, mapped or not
			hostCanary := filepath.Join(hostDir, "canary")
			if err := os.WriteFile(hostCanary, []byte("host"), 0o666); err != nil {
				t.Fatal(err)
			}
			inst := hostInstance(t, append(mode.opts, WithWritableMount(hostDir, "/mnt/host"))...)
			if err := inst.WriteFile("/canary", []byte("sandbox"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := inst.MkdirAll("/tmp/a/b", 0o755); err != nil {
				t.Fatal(err)
			}
			for target, name := range map[string]string{"/": "/rootlink", "..": "/tmp/up", "/tmp/a/../..": "/tmp/a/b/top"} {
				if err := inst.Symlink(target, name); err != nil {
					t.Fatal(err)
				}
			}
			survives := func(after string) {
				t.Helper()
				if _, err := os.Stat(hostCanary); err != nil {
					t.Fatalf("after RemoveAll(%q) the canary on the host mount is gone: %v", after, err)
				}
				if b, err := inst.ReadFile("canary"); err != nil || string(b) != "sandbox" {
					t.Fatalf("after RemoveAll(%q) the sandbox's canary: %q, %v", after, b, err)
				}
			}
			for _, p := range []string{
				"/", "//", "///", "/.", "/./", "../..", "..", "/tmp/..", "tmp/../..", "/tmp/../",
				"/proc/..", "/mnt/host/../..", "/rootlink/", "/rootlink/.", "/rootlink//.", "/tmp/up/",
				"/tmp/up/.", "/tmp/a/b/top/", "/tmp/a/b/top/.",
			} {
				err := inst.RemoveAll(p)
				if err == nil {
					t.Errorf("RemoveAll(%q) succeeded; it names the root", p)
				} else if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EINVAL) {
					t.Errorf("RemoveAll(%q): %v, want EBUSY or EINVAL", p, err)
				}
				survives(p)
			}
			// A link to the root is removed, not followed.
			for _, p := range []string{"/rootlink", "/tmp/up", "/tmp/a/b/top"} {
				if err := inst.RemoveAll(p); err != nil {
					t.Errorf("RemoveAll(%q): %v", p, err)
				}
				if _, err := inst.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("after RemoveAll(%q): %v, want it gone", p, err)
				}
				survives(p)
			}
			// Everything else is removed as os.RemoveAll removes it.
			if err := inst.RemoveAll("/tmp/a/"); err != nil {
				t.Errorf("RemoveAll(/tmp/a/): %v", err)
			}
			if _, err := inst.Stat("/tmp/a"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("/tmp/a after RemoveAll: %v", err)
			}
			if err := inst.RemoveAll("/tmp/missing/x"); err != nil {
				t.Errorf("RemoveAll of a missing path: %v", err)
			}
		})
	}
}

// TestRemoveAllRace: inside, a directory and a symlink to the root change
// places as fast as the sandbox can while the host removes the directory
// by every spelling that could reach the root through the link; the root,
// a canary in it and one on a writable host mount survive.
func TestRemoveAllRace(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			hostDir := t.TempDir()
			os.Chmod(hostDir, 0o777)
			hostCanary := filepath.Join(hostDir, "canary")
			if err := os.WriteFile(hostCanary, []byte("host"), 0o666); err != nil {
				t.Fatal(err)
			}
			inst := hostInstance(t, append(mode.opts, WithWritableMount(hostDir, "/mnt/host"))...)
			if err := inst.WriteFile("/canary", []byte("sandbox"), 0o644); err != nil {
				t.Fatal(err)
			}
			prepare := func() { // again, after a removal took one of them
				inst.MkdirAll("/race/d/sub", 0o755)
				inst.Symlink("/", "/race/l")
			}
			prepare()
			cmd, out := startExchanger(t, inst, "/race/d", "/race/l")
			removed := 0
			for deadline := time.Now().Add(raceFor); time.Now().Before(deadline); {
				for _, p := range []string{"/race/d/", "/race/d/.", "/race/d/..", "/race/d/../..", "/race/l/", "/race/l/sub/../.."} {
					if inst.RemoveAll(p) == nil {
						removed++
					}
				}
				if _, err := inst.Stat("/canary"); err != nil {
					t.Fatalf("the sandbox's canary is gone: %v", err)
				}
				prepare()
			}
			waitExchanger(t, cmd, out)
			t.Logf("%d removals of the directory", removed)
			for _, p := range []string{"/canary", "/bin/sh", "/mnt/host/canary", "/race"} {
				if _, err := inst.Stat(p); err != nil {
					t.Errorf("%s after the race: %v", p, err)
				}
			}
			if _, err := os.Stat(hostCanary); err != nil {
				t.Errorf("the canary on the host mount: %v", err)
			}
		})
	}
}
