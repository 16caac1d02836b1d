package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestLimitErrorNoFile: New in a process with two descriptors to spare
// under its RLIMIT_NOFILE (a child, so that no other test runs short)
// fails with a *LimitError that names RLIMIT_NOFILE and still matches
// EMFILE.
func TestLimitErrorNoFile(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRoleEnv+"=new-at-nofile", "CC_CACHE_DIR="+testCache)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "limit RLIMIT_NOFILE EMFILE ") {
		t.Errorf("New with no descriptors to spare: %q, want a LimitError naming RLIMIT_NOFILE", got)
	}
}

// newAtNofile plays TestLimitErrorNoFile's child: it fills its descriptor
// table up to RLIMIT_NOFILE but two, starts a sandbox and prints what New
// returned. The table is filled rather than the limit set from a count of
// /proc/self/fd: a descriptor open for a moment while it was counted
// (once in make test's race phase) left New room enough to succeed.
func newAtNofile() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	lim := syscall.Rlimit{Cur: uint64(len(fds) + 16), Max: uint64(len(fds) + 16)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var fill []int
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	if len(fill) < 2 {
		fmt.Println("error: could not fill the descriptor table")
		return 1
	}
	syscall.Close(fill[len(fill)-1])
	syscall.Close(fill[len(fill)-2])
	inst, err := New(context.Background(), HostImage(), WithCacheDir(os.Getenv("CC_CACHE_DIR")))
	if err == nil {
		inst.Close()
		fmt.Println("started")
		return 0
	}
	var le *LimitError
	if !errors.As(err, &le) {
		fmt.Println("other", err)
		return 0
	}
	fmt.Println("limit", le.Limit, map[bool]string{true: "EMFILE", false: "not-EMFILE"}[errors.Is(err, syscall.EMFILE)], err)
	return 0
}
