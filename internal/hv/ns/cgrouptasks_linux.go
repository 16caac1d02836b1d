package ns

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openTasks opens the "tasks" file of the v1 cgroup dir for writing: a
// thread that writes "0" to it moves into the cgroup alone, without the
// rest of its process (and so without the cost of a process migration).
func openTasks(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "tasks"), os.O_WRONLY|unix.O_CLOEXEC, 0)
}

// joinTasks moves the calling thread into the cgroup whose tasks file is
// f; the caller has locked its goroutine to the thread.
func joinTasks(f *os.File) error {
	if _, err := unix.Pwrite(int(f.Fd()), []byte("0"), 0); err != nil {
		return fmt.Errorf("moving a thread into %s: %w", f.Name(), err)
	}
	return nil
}
