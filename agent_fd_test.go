package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The agent's descriptors: the agent is PID 1 of the sandbox, so
// /proc/self/fd/N and /proc/1/fd/N inside are its own descriptors, and
// /proc/1/root, /proc/self/cwd and /proc/self/exe its own view. A symlink
// the sandbox plants there must never make a host call read through them,
// the agent must hold nothing of the host's it does not need, and nothing
// the host program inherited may reach the sandbox.

// inheritedSecret opens a host file the way a host program inherits one
// from its parent (a shell's redirection): without close-on-exec, so that
// every program this process starts inherits it too. It returns the
// descriptor, the file's content and its path.
func inheritedSecret(t *testing.T) (int, []byte, string) {
	t.Helper()
	secret := []byte("host secret behind an inherited descriptor")
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	low, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(low)
	// A high number, which no descriptor a start hands on (3, 4, 5, ...)
	// replaces in the child; no O_CLOEXEC, on purpose.
	fd, err := unix.FcntlInt(uintptr(low), unix.F_DUPFD, 200)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, secret, p
}

// TestAgentMagicLinks plants symlinks to the agent's magic links and reads
// them through every host call, in both io modes; a command looks for the
// inherited descriptor in its own table.
func TestAgentMagicLinks(t *testing.T) {
	secretFd, secret, secretPath := inheritedSecret(t)
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			if err := inst.MkdirAll("/l", 0o755); err != nil {
				t.Fatal(err)
			}
			links := map[string]string{
				"/l/root": "/proc/1/root/etc/hostname", "/l/rootdir": "/proc/1/root",
				"/l/cwd": "/proc/self/cwd", "/l/exe": "/proc/self/exe", "/l/pexe": "/proc/1/exe",
				"/l/fddir": "/proc/self/fd", // a plain directory: its entries are the magic links
				"/l/chain": "/l/fd6",
			}
			for n := range 65 {
				links[fmt.Sprintf("/l/fd%d", n)] = fmt.Sprintf("/proc/self/fd/%d", n)
				links[fmt.Sprintf("/l/pfd%d", n)] = fmt.Sprintf("/proc/1/fd/%d", n)
			}
			links[fmt.Sprintf("/l/secret%d", secretFd)] = fmt.Sprintf("/proc/self/fd/%d", secretFd)
			for name, target := range links {
				if err := inst.Symlink(target, name); err != nil {
					t.Fatal(err)
				}
			}
			paths := []string{"/l/fddir/6", fmt.Sprintf("/l/fddir/%d", secretFd), "/l/rootdir/etc/hostname"}
			for name := range links {
				if name != "/l/fddir" {
					paths = append(paths, name)
				}
			}
			for _, p := range paths {
				if b, err := inst.ReadFile(p); err == nil {
					t.Errorf("ReadFile(%q) read %d bytes (%q) through the agent's magic link", p, len(b), trim(b))
				} else if bytes.Contains(b, secret) {
					t.Errorf("ReadFile(%q) returned the host secret", p)
				}
				if f, err := inst.Open(p); err == nil {
					buf := make([]byte, 256)
					n, _ := f.Read(buf)
					f.Close()
					t.Errorf("Open(%q) opened the agent's descriptor (read %q)", p, trim(buf[:n]))
				}
				if fi, err := inst.Stat(p); err == nil {
					t.Errorf("Stat(%q) = %v %d bytes through the agent's magic link", p, fi.Mode(), fi.Size())
				}
				if entries, err := inst.ReadDir(p); err == nil {
					t.Errorf("ReadDir(%q) listed %d entries through the agent's magic link", p, len(entries))
				}
				if err := inst.WriteFile(p, []byte("x"), 0o644); err == nil {
					t.Errorf("WriteFile(%q) wrote through the agent's magic link", p)
				}
			}
			if b, err := os.ReadFile(secretPath); err != nil || !bytes.Equal(b, secret) {
				t.Errorf("the host secret changed: %q, %v", b, err)
			}
			// A command never gets the host program's inherited descriptors.
			out, err := inst.Command("sh", "-c", "ls /proc/self/fd; cat /proc/self/fd/"+strconv.Itoa(secretFd)+" 2>/dev/null || true").Output()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, secret) {
				t.Errorf("a command read the host program's inherited descriptor %d", secretFd)
			}
			if fds := strings.Fields(string(out)); strings.Join(fds, " ") != "0 1 2 3" {
				t.Errorf("a command's descriptors: %v, want 0 1 2 and ls's own 3", fds)
			}
		})
	}
}

// TestAgentMagicLinkRace: inside, a regular file and a symlink to the
// agent's copy of an inherited host descriptor change places as fast as the
// sandbox can while the host reads both paths; the host sees the sandbox's
// file or an error, never the host's file.
func TestAgentMagicLinkRace(t *testing.T) {
	secretFd, secret, _ := inheritedSecret(t)
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			if err := inst.MkdirAll("/r", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := inst.WriteFile("/r/a", []byte("sandbox"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := inst.Symlink(fmt.Sprintf("/proc/self/fd/%d", secretFd), "/r/b"); err != nil {
				t.Fatal(err)
			}
			cmd, out := startExchanger(t, inst, "/r/a", "/r/b")
			leaked := func(p string, b []byte) {
				if bytes.Contains(b, secret) {
					t.Errorf("reading %s returned the host file behind the agent's descriptor", p)
				}
			}
			var reads, refused int
			for deadline := time.Now().Add(raceFor); time.Now().Before(deadline) && !t.Failed(); {
				for _, p := range []string{"/r/a", "/r/b"} {
					b, err := inst.ReadFile(p)
					leaked(p, b)
					if f, err := inst.Open(p); err == nil {
						buf := make([]byte, 64)
						n, _ := f.Read(buf)
						f.Close()
						leaked(p, buf[:n])
					}
					if err == nil {
						reads++
					} else {
						refused++
					}
				}
			}
			waitExchanger(t, cmd, out)
			t.Logf("%d reads of the sandbox's file, %d refused", reads, refused)
		})
	}
}

// trim shortens what a failed check shows.
func trim(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// TestAgentDescriptors looks at the agent's descriptor table from the host:
// every descriptor above 2 is close-on-exec, and each is one the agent
// needs: a socket, a pipe, an anonymous inode (epoll, eventfd, pidfd), a
// character device (the null device, /dev/net/tun), the sandbox's root or,
// for a moment, the sandbox's /etc/passwd or /etc/group (the agent reads
// them for commands, and ahead of the first one while the host connects).
// No host file or directory, none the host program inherited.
func TestAgentDescriptors(t *testing.T) {
	inheritedSecret(t)
	inst := hostInstance(t)
	// A command makes the agent open what commands need.
	if err := inst.Command("true").Run(); err != nil {
		t.Fatal(err)
	}
	pid := inst.runner.Pid()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rootSt unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root", pid), &rootSt); err != nil {
		t.Fatal(err)
	}
	// The user files, as the agent sees them (the test's own sandbox,
	// which runs nothing else).
	userFiles := map[[2]uint64]bool{}
	for _, name := range []string{"passwd", "group"} {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/root/etc/%s", pid, name), &st); err == nil {
			userFiles[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	for _, e := range entries {
		fd, _ := strconv.Atoi(e.Name())
		link, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if fd > 2 {
			info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
			if err == nil && !closeOnExec(string(info)) {
				t.Errorf("agent descriptor %d (%s) is not close-on-exec: commands inherit it", fd, link)
			}
		}
		if strings.HasPrefix(link, "socket:") || strings.HasPrefix(link, "pipe:") || strings.HasPrefix(link, "anon_inode:") {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
			continue // closed since the listing
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFCHR:
		case st.Dev == rootSt.Dev && st.Ino == rootSt.Ino:
		case userFiles[[2]uint64{st.Dev, st.Ino}]:
		default:
			t.Errorf("the agent holds descriptor %d: %s (mode %o)", fd, link, st.Mode)
		}
	}
}

// closeOnExec reports whether an fdinfo's flags have O_CLOEXEC.
func closeOnExec(fdinfo string) bool {
	for _, line := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&unix.O_CLOEXEC != 0
		}
	}
	return false
}

// TestAgentOwnProcFiles: the agent's own procfs files (its memory, its
// environment, its threads') are not the sandbox's files, and no symlink
// the sandbox plants makes a host call read, write or list them, while the
// sandbox's own processes' files and the kernel's stay readable. A link
// that swaps between a regular file and the agent's memory as fast as the
// sandbox can leaks nothing either.
func TestAgentOwnProcFiles(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			// The agent's threads, as the sandbox sees them.
			tids := strings.Fields(run(t, inst, "ls /proc/1/task"))
			if len(tids) < 2 {
				t.Fatalf("the agent lists threads %v; want its runtime's several", tids)
			}
			if err := inst.MkdirAll("/p", 0o755); err != nil {
				t.Fatal(err)
			}
			targets := []string{"/proc/1/mem", "/proc/1/environ", "/proc/1/auxv", "/proc/self/mem",
				"/proc/self/environ", "/proc/thread-self/environ", "/proc/1/task/1/mem", "/proc/1/fd",
				"/proc/1/fdinfo", "/proc/1/map_files", "/proc/self/maps", "/proc/1/stack"}
			for _, tid := range tids {
				targets = append(targets, "/proc/"+tid+"/mem", "/proc/"+tid+"/maps", "/proc/1/task/"+tid+"/environ")
			}
			for i, target := range targets {
				link := fmt.Sprintf("/p/l%d", i)
				if err := inst.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				for _, p := range []string{link, target} {
					if b, err := inst.ReadFile(p); err == nil {
						t.Errorf("ReadFile(%q) read %d bytes of the agent's own %s", p, len(b), target)
					} else if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("ReadFile(%q): %v; want a permission error", p, err)
					}
					if f, err := inst.Open(p); err == nil {
						f.Close()
						t.Errorf("Open(%q) opened the agent's own %s", p, target)
					}
					if err := inst.WriteFile(p, []byte("x"), 0o644); err == nil {
						t.Errorf("WriteFile(%q) wrote the agent's own %s", p, target)
					}
					if entries, err := inst.ReadDir(p); err == nil {
						t.Errorf("ReadDir(%q) listed %d entries of the agent's own %s", p, len(entries), target)
					}
				}
			}
			if target, err := inst.Readlink("/proc/1/exe"); err == nil {
				t.Errorf("Readlink(/proc/1/exe) = %q: the agent's own executable", target)
			}
			// What any process may read of any other, the agent's included:
			// /proc/net and /proc/mounts are the kernel's links to
			// /proc/self/..., the agent's as PID 1. Read only.
			for _, p := range []string{"/proc/net/dev", "/proc/mounts", "/proc/1/cmdline", "/proc/1/status", "/proc/self/mountinfo"} {
				if b, err := inst.ReadFile(p); err != nil || len(b) == 0 {
					t.Errorf("ReadFile(%q) = %d bytes, %v; want what the sandbox's processes read", p, len(b), err)
				}
			}
			comm, err := inst.ReadFile("/proc/1/comm")
			if err != nil {
				t.Fatal(err)
			}
			if err := inst.WriteFile("/proc/1/comm", []byte("renamed"), 0o644); err == nil {
				t.Error("WriteFile(/proc/1/comm) renamed the agent")
			}
			if now, err := inst.ReadFile("/proc/1/comm"); err != nil || !bytes.Equal(now, comm) {
				t.Errorf("the agent's comm %q, then %q, %v", comm, now, err)
			}
			// The sandbox's processes and the kernel's files stay readable.
			sleeper := inst.Command("sh", "-c", "echo $$; read line") // no exec: its cmdline stays
			stdout, err := sleeper.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdin, err := sleeper.StdinPipe() // held open: the shell waits on it
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if err := sleeper.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
			line := make([]byte, 32)
			n, err := stdout.Read(line)
			if err != nil {
				t.Fatal(err)
			}
			pid := strings.TrimSpace(string(line[:n]))
			for _, p := range []string{"/proc/meminfo", "/proc/" + pid + "/status", "/proc/" + pid + "/cmdline"} {
				if b, err := inst.ReadFile(p); err != nil || len(b) == 0 {
					t.Errorf("ReadFile(%q) = %d bytes, %v; want the sandbox's file", p, len(b), err)
				}
			}
			if _, err := inst.ReadDir("/proc/" + pid + "/fd"); err != nil {
				t.Errorf("ReadDir(/proc/%s/fd): %v", pid, err)
			}
			// A regular file and a link to the agent's memory change places.
			if err := inst.WriteFile("/p/a", []byte("sandbox"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := inst.Symlink("/proc/1/environ", "/p/b"); err != nil {
				t.Fatal(err)
			}
			cmd, out := startExchanger(t, inst, "/p/a", "/p/b")
			var reads int
			for deadline := time.Now().Add(raceFor); time.Now().Before(deadline) && !t.Failed(); {
				for _, p := range []string{"/p/a", "/p/b"} {
					if b, err := inst.ReadFile(p); err == nil {
						reads++
						if string(b) != "sandbox" {
							t.Errorf("ReadFile(%q) = %q: not the sandbox's file", p, trim(b))
						}
					}
				}
			}
			waitExchanger(t, cmd, out)
			if reads == 0 {
				t.Error("no read of the sandbox's own file succeeded while the paths swapped")
			}
		})
	}
}
