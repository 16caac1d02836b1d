package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// holdInotify is a program that takes inotify instances until the kernel
// refuses one, says how many it took and why it stopped, and holds them
// until its input ends.
const holdInotify = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while n < 100000 and libc.inotify_init1(0) >= 0:
    n += 1
print(n, os.strerror(ctypes.get_errno()), flush=True)
sys.stdin.read()
`

// TestSandboxKernelCountsOwnBudget: the kernel counts inotify instances
// (and message queue bytes, pending signals, processes) per user up the
// chain of user namespaces, against the host's per-user limits. Code in a
// sandbox takes every inotify instance it can and holds them; the host
// program (root) can still make one, and so can a second sandbox: a
// sandbox's user namespace is owned by a uid of its own, not by root,
// whose budget the host's root processes share.
func TestSandboxKernelCountsOwnBudget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: an unprivileged caller's sandboxes are charged to the caller, who has no other uid to give them")
	}
	hold := func(inst *Instance) (took string, release func()) {
		cmd := inst.Command("python3", "-c", holdInotify)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatalf("the sandbox's program: %v", err)
		}
		return strings.TrimSpace(line), func() {
			in.Close()
			io.Copy(io.Discard, out)
			cmd.Wait()
		}
	}
	first := newInstance(t, HostImage())
	took, release := hold(first)
	defer release()
	t.Logf("the first sandbox took %s", took)
	var n int
	if _, err := fmt.Sscan(took, &n); err != nil || n == 0 {
		t.Fatalf("the first sandbox took no inotify instance: %q", took)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Errorf("the host program, while a sandbox holds all it can: inotify_init1: %v", err)
	} else {
		unix.Close(fd)
	}
	second := newInstance(t, HostImage())
	took2, release2 := hold(second)
	release2()
	if _, err := fmt.Sscan(took2, &n); err != nil || n == 0 {
		t.Errorf("a second sandbox, while the first holds all it can: %q", took2)
	}
}
