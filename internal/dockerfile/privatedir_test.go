package dockerfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrivateDirRemovesLeftovers: a host process killed during a step
// leaves its secret in host memory (/dev/shm) until a reboot. The next
// private directory made removes such leftovers of this user's whose
// process is gone, and nothing of a process that runs.
func TestPrivateDirRemovesLeftovers(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	parent := privateDirParents()[0]
	left := filepath.Join(parent, fmt.Sprintf("%ssecret-%d-test", privateDirPrefix, gone.Process.Pid))
	live := filepath.Join(parent, fmt.Sprintf("%ssecret-%d-test", privateDirPrefix, os.Getppid()))
	for _, d := range []string{left, live} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "secret"), []byte("s3cret"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	defer os.RemoveAll(live)
	defer os.RemoveAll(left)
	dir, err := privateDir("secret-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if !strings.HasPrefix(filepath.Base(dir), fmt.Sprintf("%ssecret-%d-", privateDirPrefix, os.Getpid())) {
		t.Errorf("privateDir made %s", dir)
	}
	if _, err := os.Lstat(left); err == nil {
		t.Errorf("the leftover of process %d, gone, is still there", gone.Process.Pid)
	}
	if _, err := os.Lstat(filepath.Join(live, "secret")); err != nil {
		t.Errorf("the directory of process %d, running, was touched: %v", os.Getppid(), err)
	}
}
