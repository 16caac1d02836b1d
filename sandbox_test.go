package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	inst := hostInstance(t)
	if inst.ID() == "" {
		t.Fatal("empty ID")
	}
	select {
	case <-inst.Done():
		t.Fatal("Done closed on a running sandbox")
	default:
	}
	if err := inst.Err(); err != nil {
		t.Fatalf("Err on a running sandbox: %v", err)
	}
	// The instance's state directory sits in its process's directory
	// under instances/, which other tests' sandboxes may still hold.
	stateDirs := filepath.Join(testCache, "instances", "*", inst.ID())
	if held, _ := filepath.Glob(stateDirs); len(held) != 1 {
		t.Errorf("state directories of a running sandbox: %v, want one", held)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := inst.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-inst.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if err := inst.Wait(context.Background()); err != nil {
		t.Errorf("Wait after Close: %v", err)
	}
	if _, err := inst.Stat("/"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Stat after Close: %v, want ErrNotRunning", err)
	}
	if err := inst.Command("true").Run(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Run after Close: %v, want ErrNotRunning", err)
	}
	if left, _ := filepath.Glob(stateDirs); len(left) > 0 {
		t.Errorf("state left behind: %v", left)
	}
}

func TestTimeout(t *testing.T) {
	inst := hostInstance(t, WithTimeout(300*time.Millisecond))
	cmd := inst.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := inst.Wait(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait: %v, want ErrTimeout", err)
	}
	<-inst.Done()
	if !errors.Is(inst.Err(), ErrTimeout) {
		t.Errorf("Err: %v", inst.Err())
	}
	if err := cmd.Wait(); err == nil {
		t.Error("a command survived the sandbox's timeout")
	}
	if err := inst.Command("true").Run(); !errors.Is(err, ErrTimeout) {
		t.Errorf("Run after the timeout: %v, want ErrTimeout", err)
	}
}

func TestOptions(t *testing.T) {
	for _, opt := range []Option{WithMemoryMB(0), WithCPUs(0), WithTimeout(-1), WithUser(""), WithEnv("NOEQUALS"),
		WithWorkDir("relative"), WithHostname("bad host"), WithMount("/tmp", "relative"), WithMount("/tmp", "/")} {
		if _, err := New(context.Background(), HostImage(), WithCacheDir(testCache), opt); err == nil {
			t.Errorf("New accepted a bad option %#v", opt)
		}
	}
	if _, err := New(context.Background(), nil); err == nil {
		t.Error("New accepted a nil source")
	}
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in"), []byte("from the host"), 0o644)
	rw := t.TempDir()
	if os.Geteuid() == 0 {
		os.Chown(rw, 1_000_000_000, 1_000_000_000) // the sandbox's root may write
	}
	inst := hostInstance(t,
		WithEnv("FOO=bar", "PATH=/usr/bin:/bin"), WithWorkDir("/tmp"), WithHostname("box"),
		WithMount(host, "/mnt/ro"), WithWritableMount(rw, "/mnt/rw"))
	if out := run(t, inst, "echo $FOO $PATH; pwd; hostname; cat /mnt/ro/in"); out != "bar /usr/bin:/bin\n/tmp\nbox\nfrom the host" {
		t.Errorf("options inside: %q", out)
	}
	if out, err := inst.Command("sh", "-c", "echo x > /mnt/ro/new").CombinedOutput(); err == nil {
		t.Errorf("wrote to a read-only mount: %s", out)
	}
	run(t, inst, "echo written > /mnt/rw/new")
	if b, err := os.ReadFile(filepath.Join(rw, "new")); err != nil || string(b) != "written\n" {
		t.Errorf("writable mount: %q %v", b, err)
	}
	if os.Geteuid() == 0 {
		user := hostInstance(t, WithUser("nobody"))
		if out := run(t, user, "id -u; id -g"); out != "65534\n65534\n" {
			t.Errorf("WithUser(nobody): %q", out)
		}
		cmd := user.Command("id", "-u")
		cmd.User = "0"
		if out, err := cmd.Output(); err != nil || string(out) != "0\n" {
			t.Errorf("Cmd.User over WithUser: %q %v", out, err)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	inst, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithMemoryMB(64), WithCPUs(0.5))
	if err != nil {
		// Hosts without the controllers must say so.
		if !strings.Contains(err.Error(), "cgroup") {
			t.Fatalf("New with limits: %v", err)
		}
		t.Skipf("limits unavailable here: %v", err) // the error above is the check
	}
	defer inst.Close()
	// dd's 128 MiB block is twice the limit: the kernel kills it.
	err = inst.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1").Run()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal() != syscall.SIGKILL || !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("a 128 MiB hog under a 64 MiB limit: %v, want an out-of-memory kill", err)
	}
	// A shell reports its child's kill as status 137: still out of memory.
	// tail -n 1 keeps all of a newline-free input.
	err = inst.Command("sh", "-c", "head -c 300000000 /dev/zero | tail -n 1 >/dev/null").Run()
	if !errors.Is(err, ErrOutOfMemory) || !strings.Contains(err.Error(), "out of memory") || !strings.Contains(err.Error(), "WithMemoryMB") {
		t.Fatalf("a 300 MB hog in a shell: %v, want out of memory", err)
	}
	// A plain failure is not.
	if err := inst.Command("sh", "-c", "kill -9 $$").Run(); err == nil || errors.Is(err, ErrOutOfMemory) {
		t.Errorf("a shell killing itself: %v, want a kill that is not out of memory", err)
	}
	if err := inst.Err(); err != nil {
		t.Errorf("the sandbox after its commands' OOM kills: %v", err)
	}
	dirs := []string{sandboxCgroup(t, inst, "memory"), sandboxCgroup(t, inst, "cpu")}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if dirExists(d) {
			t.Errorf("cgroup %s left behind", d)
		}
	}
}

// TestFromInside checks what a process in the sandbox sees.
func TestFromInside(t *testing.T) {
	inst := hostInstance(t, WithHostname("inside"))
	if b, err := inst.ReadFile("proc/1/cmdline"); err != nil || !strings.HasPrefix(string(b), "cc-agent") {
		t.Errorf("PID 1 is %q (%v), want the agent", b, err)
	}
	// Host processes are invisible: the sandbox's /proc lists a handful of
	// its own, and not this test process.
	out := run(t, inst, "ls /proc | grep -c '^[0-9]'")
	if n, _ := strconv.Atoi(strings.TrimSpace(out)); n < 2 || n > 10 {
		t.Errorf("%s processes visible in the sandbox", out)
	}
	if _, err := inst.Stat("proc/" + strconv.Itoa(os.Getpid())); err == nil && os.Getpid() > 10 {
		t.Errorf("host pid %d visible", os.Getpid())
	}
	if out := run(t, inst, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"); out != "lo\n" {
		t.Errorf("interfaces: %q, want only lo", out)
	}
	if out := run(t, inst, "hostname"); out != "inside\n" {
		t.Errorf("hostname %q", out)
	}
	if out := run(t, inst, "id -u"); out != "0\n" {
		t.Errorf("uid inside %q", out)
	}
	// uid 0 inside maps to a host uid that is not 0.
	m, _ := inst.ReadFile("proc/self/uid_map")
	fields := strings.Fields(string(m))
	if len(fields) < 3 || fields[0] != "0" || fields[1] == "0" {
		t.Errorf("uid_map %q: root inside is root outside", m)
	}
}

func TestBackendChoice(t *testing.T) {
	if _, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithBackend("nonsense")); err == nil ||
		!strings.Contains(err.Error(), "unknown backend") {
		t.Errorf("an unknown backend: %v", err)
	}
	t.Setenv("CC_BACKEND", "nonsense")
	if _, err := New(context.Background(), HostImage(), WithCacheDir(testCache)); err == nil {
		t.Error("CC_BACKEND=nonsense accepted")
	}
	inst := hostInstance(t, WithBackend(BackendNamespaces))
	run(t, inst, "true")
}

// TestUserFollowsPasswd: a command's user is looked up in the sandbox's
// /etc/passwd as it is when the command starts, however often it changes.
// Unprivileged, only root is mapped: alice is found, then refused.
func TestUserFollowsPasswd(t *testing.T) {
	inst := hostInstance(t)
	b, err := inst.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	idOf := func() (string, error) {
		cmd := inst.Command("id", "-u")
		cmd.User = "alice"
		out, err := cmd.Output()
		return string(out), err
	}
	if out, err := idOf(); err == nil {
		t.Fatalf("alice ran before she existed: %q", out)
	}
	for _, uid := range []string{"1234", "1235", "1236"} {
		// Same size each time, written at once: only the contents change.
		entry := append(append([]byte{}, b...), "alice:x:"+uid+":"+uid+"::/:/bin/sh\n"...)
		if err := inst.WriteFile("/etc/passwd", entry, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := idOf()
		if os.Geteuid() != 0 {
			if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), uid) {
				t.Errorf("alice (uid %s) in a one-id sandbox: %q %v", uid, out, err)
			}
			continue
		}
		if err != nil || out != uid+"\n" {
			t.Errorf("alice with uid %s: %q %v", uid, out, err)
		}
	}
}
