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

// TestLimitErrorNoFile: New in a process whose RLIMIT_NOFILE leaves it
// two descriptors to spare (a child, so that no other test runs short)
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

// newAtNofile plays TestLimitErrorNoFile's child: it lowers RLIMIT_NOFILE
// to two above the descriptors it holds, starts a sandbox and prints what
// New returned.
func newAtNofile() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	lim := syscall.Rlimit{Cur: uint64(len(fds) + 2), Max: uint64(len(fds) + 2)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("error:", err)
		return 1
	}
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
