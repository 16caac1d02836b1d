package ipc

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// staleSocket leaves a socket file at path, as a helper killed with its
// client does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
}

func TestRemoveStaleSockets(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }

	// A client killed with SIGKILL: its socket and an unheld lock file.
	dead := filepath.Join(dir, "cc-1-dead-1.sock")
	staleSocket(t, dead)
	if f, err := os.Create(dead + socketLockSuffix); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	// A live client: its lock is held.
	live := filepath.Join(dir, "cc-1-live-1.sock")
	staleSocket(t, live)
	held, err := lockSocket(live)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockSocket(live, held)
	// An unheld lock whose "socket" is a regular file: the file stays.
	notSocket := filepath.Join(dir, "cc-1-file-1.sock")
	if err := os.WriteFile(notSocket, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notSocket+socketLockSuffix, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A socket with no lock file at all (made before locks existed) stays.
	unlocked := filepath.Join(dir, "cc-1-old-1.sock")
	staleSocket(t, unlocked)

	RemoveStaleSockets()

	for p, want := range map[string]bool{
		dead: false, dead + socketLockSuffix: false,
		live: true, live + socketLockSuffix: true,
		notSocket: true, notSocket + socketLockSuffix: false,
		unlocked: true,
	} {
		if got := exists(p); got != want {
			t.Errorf("%s exists: %v, want %v", filepath.Base(p), got, want)
		}
	}
}

// TestHelperSocketLock checks that a spawned helper's socket has its lock
// file held while the client runs, and that Close removes both.
func TestHelperSocketLock(t *testing.T) {
	leakcheck.Check(t, ownSockets) // the lock file too
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), testServerEnv+"=1", "GORACE=atexit_sleep_ms=0")
	c, err := StartHelper(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lock := c.owner.(*helperProcess).socketPath + socketLockSuffix
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("no lock file beside the helper's socket: %v", err)
	}
	RemoveStaleSockets()
	if _, err := os.Stat(c.owner.(*helperProcess).socketPath); err != nil {
		t.Fatalf("a sweep removed a live helper's socket: %v", err)
	}
	if got, err := c.Call(msgEcho, []byte("hi")); err != nil || string(got) != "\x00hi" {
		t.Fatalf("echo through the helper after a sweep: %q %v", got, err)
	}
	c.Close()
	for _, p := range []string{c.owner.(*helperProcess).socketPath, lock} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after Close: %v", p, err)
		}
	}
}
