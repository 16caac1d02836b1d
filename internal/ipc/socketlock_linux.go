package ipc

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// A spawned helper's socket file outlives a client killed with SIGKILL:
// the client cannot remove it, and the helper dies with the client. So
// beside each such socket the client keeps a lock file, flocked for as
// long as it runs, and the first helper start in every process removes the
// sockets whose lock nobody holds any more.

// socketLockSuffix names a socket's lock file: the socket's path plus it.
const socketLockSuffix = ".lock"

// lockSocket creates the lock file of socketPath and holds its flock. It
// is made under another name and renamed once locked, so that a sweep never
// finds it unlocked.
func lockSocket(socketPath string) (*os.File, error) {
	tmp := socketPath + socketLockSuffix + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := fsutil.Flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, socketPath+socketLockSuffix); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// unlockSocket removes the lock file of socketPath and releases lock.
func unlockSocket(socketPath string, lock *os.File) {
	if lock == nil {
		return
	}
	os.Remove(socketPath + socketLockSuffix)
	lock.Close()
}

// RemoveStaleSockets removes the helper sockets, and their lock files, that
// clients now gone left in the socket directories: those whose lock file
// nobody holds. It removes only files this user owns, and of the sockets'
// paths only sockets. StartHelper calls it once per process.
func RemoveStaleSockets() {
	seen := map[string]bool{}
	for _, dir := range staleSocketDirs() {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		locks, _ := filepath.Glob(filepath.Join(dir, "cc-*.sock"+socketLockSuffix))
		for _, lock := range locks {
			removeIfStale(lock)
		}
	}
}

// removeIfStale removes the lock file at lock and its socket when the lock
// is free and both belong to this user.
func removeIfStale(lock string) {
	f, err := os.OpenFile(lock, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || int(st.Uid) != os.Geteuid() {
		return
	}
	if fsutil.Flock(f, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // held: its client runs
	}
	socket := strings.TrimSuffix(lock, socketLockSuffix)
	var sst unix.Stat_t
	if unix.Lstat(socket, &sst) == nil && int(sst.Uid) == os.Geteuid() {
		removeStaleSocket(socket)
	}
	os.Remove(lock)
}
