//go:build gvisor

package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/ccsandbox/sandbox/gvisor"
)

// The public API on the gVisor backend. make test-gvisor builds this file
// (tag gvisor, CGO_ENABLED=0: the test binary is runsc too) and runs the
// public suite with CC_BACKEND=gvisor, then these tests, which check what
// only gVisor shows.

// gvisorInstance starts a gVisor sandbox of the host image.
func gvisorInstance(t *testing.T, opts ...Option) *Instance {
	t.Helper()
	inst := hostInstance(t, append([]Option{WithBackend(BackendGVisor)}, opts...)...)
	if inst.fdOK {
		t.Fatal("a gVisor instance claims its connections carry descriptors")
	}
	return inst
}

// landlockProbe calls landlock_create_ruleset(NULL, 0,
// LANDLOCK_CREATE_RULESET_VERSION) (syscall 444 on amd64 and arm64), which
// Linux answers with its Landlock ABI version and gVisor does not
// implement, and prints the result or the error.
const landlockProbe = `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(444, None, 0, 1)
print(r if r >= 0 else os.strerror(ctypes.get_errno()))`

// TestGVisorKernel checks from inside that the sandbox runs on gVisor's
// kernel: its uname and /proc/version, none of the host's processes or
// devices, and a system call the host kernel implements that fails inside,
// while the same call works on the namespace backend.
func TestGVisorKernel(t *testing.T) {
	inst := gvisorInstance(t)
	if out := run(t, inst, "uname -r; uname -v"); !strings.Contains(out, "gvisor") {
		t.Errorf("uname inside: %q, want gVisor's kernel", out)
	}
	if b, err := inst.ReadFile("proc/version"); err != nil || !strings.Contains(string(b), "gvisor") {
		t.Errorf("/proc/version inside: %q %v", b, err)
	}
	hostVersion, _ := os.ReadFile("/proc/version")
	if out := run(t, inst, "cat /proc/version"); out == string(hostVersion) {
		t.Errorf("the sandbox shows the host's kernel: %q", out)
	}
	// None of the host's processes: the agent is PID 1, and the sandbox
	// lists a handful of its own.
	if b, err := inst.ReadFile("proc/1/cmdline"); err != nil || !strings.HasPrefix(string(b), "/.cc/agent") {
		t.Errorf("PID 1 is %q (%v), want the agent", b, err)
	}
	out := run(t, inst, "ls /proc | grep -c '^[0-9]'")
	if n, _ := strconv.Atoi(strings.TrimSpace(out)); n < 2 || n > 10 {
		t.Errorf("%s processes visible in the sandbox", out)
	}
	if _, err := inst.Stat("proc/" + strconv.Itoa(os.Getpid())); err == nil && os.Getpid() > 10 {
		t.Errorf("host pid %d visible", os.Getpid())
	}
	// None of the host's devices: no block device, no /dev/kvm, and
	// gVisor's own /sys.
	hostBlock, _ := os.ReadDir("/sys/block")
	if len(hostBlock) == 0 {
		t.Fatal("the host has no block devices to look for")
	}
	for _, e := range hostBlock {
		if _, err := inst.Stat("dev/" + e.Name()); err == nil {
			t.Errorf("host block device %s visible in /dev", e.Name())
		}
		if _, err := inst.Stat("sys/block/" + e.Name()); err == nil {
			t.Errorf("host block device %s visible in /sys/block", e.Name())
		}
	}
	if _, err := inst.Stat("dev/kvm"); err == nil {
		t.Error("/dev/kvm visible in the sandbox")
	}
	// The workload's system calls do not reach the host kernel: one that
	// Linux implements and gVisor does not fails inside, and works on the
	// namespace backend.
	if out := run(t, inst, "python3 -c '"+landlockProbe+"'"); strings.TrimSpace(out) != "Function not implemented" {
		t.Errorf("landlock_create_ruleset on gVisor: %q, want ENOSYS", out)
	}
	ns := hostInstance(t, WithBackend(BackendNamespaces))
	if out := run(t, ns, "python3 -c '"+landlockProbe+"'"); func() bool { n, err := strconv.Atoi(strings.TrimSpace(out)); return err != nil || n < 1 }() {
		t.Errorf("landlock_create_ruleset on the namespace backend: %q, want the host's Landlock ABI version", out)
	}
}

// TestGVisorLimits: the pids limit holds inside gVisor, a memory hog ends
// the whole sandbox as out of memory (gVisor has no OOM killer of its own:
// the host's cgroup kills the sentry), and WithDiskMB bounds the writable
// layer.
func TestGVisorLimits(t *testing.T) {
	t.Run("pids", func(t *testing.T) {
		inst := gvisorInstance(t, WithPidsLimit(32))
		// The shell forks until the limit refuses, then exits.
		out, err := inst.Command("sh", "-c", "for i in $(seq 1 64); do sleep 60 >/dev/null 2>&1 & done").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "fork") {
			t.Errorf("64 background processes under a pids limit of 32: %v %q", err, out)
		}
		// The agent still answers (no fork needed) and sees at most the
		// limit's worth of processes.
		entries, err := inst.ReadDir("proc")
		if err != nil {
			t.Fatalf("the agent after the limit: %v", err)
		}
		n := 0
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				n++
			}
		}
		if n > 32 || n < 8 {
			t.Errorf("%d processes under a pids limit of 32", n)
		}
	})
	t.Run("disk", func(t *testing.T) {
		inst := gvisorInstance(t, WithDiskMB(16))
		out, err := inst.Command("dd", "if=/dev/zero", "of=/big", "bs=1M", "count=32").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "No space left") {
			t.Errorf("32 MB written under WithDiskMB(16): %v %s", err, out)
		}
	})
	t.Run("memory", func(t *testing.T) {
		inst, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithBackend(BackendGVisor), WithMemoryMB(256))
		if err != nil {
			if !strings.Contains(err.Error(), "cgroup") || !strings.Contains(err.Error(), "memory") {
				t.Fatalf("New: %v, want an error naming the cgroup memory controller", err)
			}
			t.Skipf("limits unavailable here: %v", err) // the error above is the check
		}
		defer inst.Close()
		run(t, inst, "true")
		err = inst.Command("sh", "-c", "head -c 600000000 /dev/zero | tail -n 1 >/dev/null").Run()
		if err == nil {
			t.Fatal("a 600 MB hog under a 256 MB limit succeeded")
		}
		<-inst.Done()
		if err := inst.Err(); !errors.Is(err, ErrOutOfMemory) {
			t.Errorf("the sandbox after a hog: %v, want out of memory", err)
		}
	})
}

// TestGVisorWaitDelayBoundsFrozenAgent: gVisor does not shield the agent
// from its sandbox's signals by thread id, so the sandbox's code can stop
// it (kill -STOP on one of its threads); no call is answered after that.
// A command whose context then ends, with a WaitDelay, still returns from
// Wait, with an error matching the context's, and Close ends the sandbox.
// The command stops the agent, then says so in a file of a host directory
// mounted writable, which needs no agent: the context ends only once the
// agent is stopped. Without the bound, Wait never returns.
func TestGVisorWaitDelayBoundsFrozenAgent(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	inst := gvisorInstance(t, WithWritableMount(dir, "/h"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := inst.CommandContext(ctx, "sh", "-c", `
		for t in $(ls /proc/1/task); do
			if [ "$t" != 1 ] && kill -STOP "$t"; then echo "$t" > /h/stopped; break; fi
		done
		sleep 1000`)
	cmd.WaitDelay = 100 * time.Millisecond
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "stopped")); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := cmd.Wait(); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "did not report") {
		t.Fatalf("Wait with the agent stopped: %v, want the bound's error, matching context.Canceled", err)
	}
	if err := inst.Close(); err != nil {
		t.Fatalf("Close with the agent stopped: %v", err)
	}
}

// TestGVisorSnapshotBoundedByDisk: a gVisor sandbox's snapshot is the tar
// its agent sends, and the host takes no more of it than the writable
// layer can hold (twice WithDiskMB and 16 MiB): the agent is in the
// sandbox, which may have replaced it. A sparse file of 1 GiB on a disk of
// 16 MiB is sent at its full size, and so refused, naming the disk, the
// sandbox still usable; a file that fits is not.
func TestGVisorSnapshotBoundedByDisk(t *testing.T) {
	inst := gvisorInstance(t, WithDiskMB(16))
	run(t, inst, "head -c 4194304 /dev/urandom > /fits")
	snap, err := inst.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("a snapshot of 4 MiB of a 16 MiB disk: %v", err)
	}
	snap.Close()
	run(t, inst, "truncate -s 1G /sparse")
	snap, err = inst.Snapshot(context.Background())
	if err == nil {
		snap.Close()
		t.Fatal("a snapshot of a 1 GiB file of a 16 MiB disk went into the store")
	}
	if !isTooLarge(err) || !strings.Contains(err.Error(), "disk of 16 MiB") {
		t.Errorf("a snapshot of a 1 GiB file of a 16 MiB disk: %v, want image.ErrTooLarge naming the disk", err)
	}
	if out := run(t, inst, "echo alive"); out != "alive\n" {
		t.Errorf("the sandbox after: %q", out)
	}
}
