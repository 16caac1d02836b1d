package ipc

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// testDialEnv makes the test binary connect to the socket it names, ask
// for an echo, and print "answered" or "refused: why".
const testDialEnv = "CC_IPC_TEST_DIAL"

// The uid and gid of "nobody", the other user of these tests.
const nobody = 65534

func runTestDial(path string) int {
	c, err := ConnectTo(path)
	if err != nil {
		fmt.Println("refused:", err)
		return 0
	}
	defer c.Close()
	if got, err := c.Call(msgEcho, []byte("hi")); err != nil {
		fmt.Println("refused:", err)
	} else {
		fmt.Printf("answered %q\n", got)
	}
	return 0
}

// dialAsNobody runs this test binary as user nobody to connect to the
// socket at path, and returns what it printed.
func dialAsNobody(t *testing.T, path string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy nobody can run: the build directory is private.
	dir, err := os.MkdirTemp("", "cc-ipc-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ipc.test")
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		dst.Close()
	}
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = []string{testDialEnv + "=" + path, "GORACE=atexit_sleep_ms=0"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the process of another user: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestHelperSocketPrivate: with the most permissive umask, a spawned
// helper's socket is still private: its directory has mode 0700 and
// belongs to this user, the socket has mode 0600, and a process of another
// user can neither reach it nor, given a socket it can reach, get an
// answer from a server: the server checks who connects (SO_PEERCRED)
// before reading a byte.
func TestHelperSocketPrivate(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	old := syscall.Umask(0)
	defer syscall.Umask(old)

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
	mode := func(p string) (os.FileMode, uint32) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid
	}
	dir := filepath.Dir(c.owner.(*helperProcess).socketPath)
	if m, uid := mode(dir); !m.IsDir() || m.Perm() != 0o700 || int(uid) != os.Geteuid() {
		t.Errorf("the socket directory %s: mode %v, uid %d; want a directory, 0700, uid %d", dir, m, uid, os.Geteuid())
	}
	if m, _ := mode(c.owner.(*helperProcess).socketPath); m&os.ModeSocket == 0 || m.Perm() != 0o600 {
		t.Errorf("the socket %s: mode %v, want a socket with 0600", c.owner.(*helperProcess).socketPath, m)
	}
	if got, err := c.Call(msgEcho, []byte("hi")); err != nil || string(got) != "\x00hi" {
		t.Fatalf("echo from the helper's own user: %q %v", got, err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the part with another user's process needs root to start one")
		return
	}
	got := dialAsNobody(t, c.owner.(*helperProcess).socketPath)
	t.Logf("another user, through the private directory: %s", got)
	if !strings.HasPrefix(got, "refused:") {
		t.Errorf("another user reached the helper: %s", got)
	}

	// A server whose socket another user can reach (a shared directory,
	// mode 0666) still refuses that user's connections.
	shared, err := os.MkdirTemp("", "cc-ipc-shared-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shared)
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(filepath.Join(shared, "s.sock"), newTestMux(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve()
	if err := os.Chmod(srv.SocketPath(), 0o666); err != nil {
		t.Fatal(err)
	}
	got = dialAsNobody(t, srv.SocketPath())
	t.Logf("another user, through a socket open to all: %s", got)
	if !strings.HasPrefix(got, "refused:") {
		t.Errorf("another user got an answer through a socket open to all: %s", got)
	}
	own, err := ConnectTo(srv.SocketPath())
	if err != nil {
		t.Fatalf("this user's own connection: %v", err)
	}
	defer own.Close()
	if got, err := own.Call(msgEcho, []byte("hi")); err != nil || string(got) != "\x00hi" {
		t.Fatalf("echo for this user: %q %v", got, err)
	}
}
