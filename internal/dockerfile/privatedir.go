package dockerfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/untrusted"
	"golang.org/x/sys/unix"
)

// privateDirPrefix starts the names of the directories privateDir makes.
const privateDirPrefix = "cc-build-"

// privateDirParents are where privateDir makes them, the first that works.
func privateDirParents() []string { return []string{"/dev/shm", os.TempDir()} }

// privateDir makes a directory only this user can enter, in host memory
// (/dev/shm) where it can, for what must never touch a disk or the store:
// a step's secrets, its ssh agent's socket, its tmpfs mounts. Its name is
// cc-build-, kind, this process's id and a random part (tests tell their
// own leftovers from those of other processes by it). It first removes
// what processes now dead left (see removeLeftDirs).
func privateDir(kind string) (string, error) {
	removeLeftDirs()
	var err error
	for _, d := range privateDirParents() {
		var dir string
		if dir, err = os.MkdirTemp(d, privateDirPrefix+kind+strconv.Itoa(os.Getpid())+"-"); err == nil {
			return dir, nil
		}
	}
	return "", err
}

// removeLeftDirs removes the directories privateDir made in processes
// that are gone: a step's secret stays in host memory until a reboot when
// the host process is killed during the step. It removes only
// directories of this user's whose process no longer runs.
func removeLeftDirs() {
	for _, parent := range privateDirParents() {
		dirs, _ := filepath.Glob(filepath.Join(parent, privateDirPrefix+"*"))
		for _, dir := range dirs {
			if pid, ok := creator(filepath.Base(dir)); ok && !running(pid) && mine(dir) {
				untrusted.RemoveAll(dir)
			}
		}
	}
}

// creator returns the process id in a name privateDir made:
// cc-build-KIND-PID-RANDOM.
func creator(name string) (int, bool) {
	parts := strings.Split(strings.TrimPrefix(name, privateDirPrefix), "-")
	if len(parts) != 3 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[1])
	return pid, err == nil && pid > 0
}

// running reports whether the process pid exists (of any user).
func running(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// mine reports whether dir is a directory, not a link, of this user's.
func mine(dir string) bool {
	var st unix.Stat_t
	return unix.Lstat(dir, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == os.Geteuid()
}
