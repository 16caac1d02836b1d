package dockerfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"golang.org/x/sys/unix"
)

// TestPrivateDirRemovesLeftovers: a host process killed during a step
// leaves its secret in host memory (/dev/shm) until a reboot. The next
// private directory made removes such leftovers of this user's whose
// process is gone, and nothing of a build that runs: one whose process
// runs here, or one that holds its directory locked though its process is
// not seen here (a build in another pid namespace sharing /dev/shm).
func TestPrivateDirRemovesLeftovers(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	parent := privateDirParents()[0]
	// The test's own directories, named as privateDir names them; no
	// sandbox writes them, so the test handles them by path.
	plant := func(pid int, name string) string {
		d := filepath.Join(parent, fmt.Sprintf("%ssecret-%d-%s", privateDirPrefix, pid, name))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.WriteFile(filepath.Join(d, "secret"), []byte("s3cret"), 0o400); err != nil {
			t.Fatal(err)
		}
		return d
	}
	left := plant(gone.Process.Pid, "left")
	live := plant(os.Getppid(), "live")
	otherNS := plant(gone.Process.Pid, "otherns")
	lock, err := os.Open(otherNS)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := fsutil.Flock(lock, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	dir, remove, err := privateDir("secret-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dir), fmt.Sprintf("%ssecret-%d-", privateDirPrefix, os.Getpid())) {
		t.Errorf("privateDir made %s", dir)
	}
	if _, err := os.Lstat(left); err == nil {
		t.Errorf("the leftover of process %d, gone, is still there", gone.Process.Pid)
	}
	for _, d := range []string{live, otherNS} {
		if _, err := os.Lstat(filepath.Join(d, "secret")); err != nil {
			t.Errorf("a running build's %s was touched: %v", d, err)
		}
	}
	// privateDir's own is locked while it is used, and gone after.
	if _, other, err := privateDir("secret-"); err != nil {
		t.Fatal(err)
	} else {
		other()
	}
	if _, err := os.Lstat(dir); err != nil {
		t.Errorf("a second privateDir removed the first's, in use: %v", err)
	}
	remove()
	if _, err := os.Lstat(dir); err == nil {
		t.Errorf("%s is still there after its remove", dir)
	}
}
