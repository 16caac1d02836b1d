package dockerfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/fsutil"
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
// own leftovers from those of other processes by it). The directory is
// locked (flock) until remove removes it, so that removeLeftDirs, which
// privateDir runs first, can tell a live build's from a dead one's.
func privateDir(kind string) (dir string, remove func(), err error) {
	removeLeftDirs()
	for _, d := range privateDirParents() {
		if dir, err = os.MkdirTemp(d, privateDirPrefix+kind+strconv.Itoa(os.Getpid())+"-"); err == nil {
			break
		}
	}
	if err != nil {
		return "", nil, err
	}
	lock, err := openDir(dir)
	if err == nil {
		err = fsutil.Flock(lock, unix.LOCK_EX)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		untrusted.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		untrusted.RemoveAll(dir)
		lock.Close()
	}, nil
}

// removeLeftDirs removes the directories privateDir made in processes
// that are gone: a step's secret stays in host memory until a reboot when
// the host process is killed during the step. It removes only directories
// of this user's that nobody holds locked and whose process no longer
// runs here (the lock tells a build in another pid namespace sharing
// /dev/shm; the process, one that has made its directory but not yet
// locked it).
func removeLeftDirs() {
	for _, parent := range privateDirParents() {
		dirs, _ := filepath.Glob(filepath.Join(parent, privateDirPrefix+"*"))
		for _, dir := range dirs {
			if pid, ok := creator(filepath.Base(dir)); ok && !running(pid) && unlockedMine(dir) {
				untrusted.RemoveAll(dir)
			}
		}
	}
}

// openDir opens dir, a directory privateDir made or one named as if it
// had, not following a link. Such a name is an entry of /dev/shm or the
// temporary directory (sticky: only its owner may rename it), so opening
// it by path is safe; what a sandbox can write lies below it (a tmpfs
// mount's t/), which untrusted.RemoveAll walks by descriptor.
func openDir(dir string) (*os.File, error) {
	return os.OpenFile(dir, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_DIRECTORY, 0)
}

// unlockedMine reports whether dir is a directory of this user's that
// nobody holds locked.
func unlockedMine(dir string) bool {
	f, err := openDir(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || int(st.Uid) != os.Geteuid() {
		return false
	}
	return fsutil.Flock(f, unix.LOCK_EX|unix.LOCK_NB) == nil
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
