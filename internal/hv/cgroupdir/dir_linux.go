package cgroupdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Mkdir creates the cgroup directory dir. When this user may not create
// cgroups there, the error says so and how to get a cgroup it may use.
func Mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("this user cannot create cgroups under %s (%v): run as root or give it a delegated cgroup", filepath.Dir(dir), errors.Unwrap(err))
		}
		return err
	}
	return nil
}

// WriteFile writes value into the control file of the cgroup dir. Its
// error names the file's path.
func WriteFile(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

// Remove removes the cgroup directory dir, waiting a little (half a
// second at most) for its last tasks to leave. A directory already gone
// is no error; one still busy then returns the kernel's EBUSY.
func Remove(dir string) error {
	var err error
	for try := 0; try < 50; try++ {
		err = os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			return err
		}
		time.Sleep(10 * time.Millisecond) // the last task is still leaving
	}
	return err
}
