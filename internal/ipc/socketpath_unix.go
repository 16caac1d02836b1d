//go:build !windows

package ipc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// socketNameRoom is what a socket's name (see SocketPath) takes after the
// directory, with the separator, at most.
const socketNameRoom = len("/cc-4194304-ffffffff-999999.sock")

// SocketDir returns this user's private directory for helper sockets,
// creating it: mode 0700, owned by this user, in a parent that other users
// cannot write to, so that nobody else can reach the sockets in it whatever
// their own modes. It is, the first that works and leaves room for a socket
// name within sun_path:
//
//  1. $XDG_RUNTIME_DIR/cc, when XDG_RUNTIME_DIR is a directory of this
//     user's with mode 0700;
//  2. cc/run in the user's cache directory (os.UserCacheDir);
//  3. cc-UID in os.TempDir(), then in /tmp;
//  4. a new directory made with os.MkdirTemp in /tmp, once per process.
//
// It returns an error when none can be had.
func SocketDir() (string, error) {
	var tried []string
	try := func(dir string, check func(string) error) (string, bool) {
		if len(dir)+socketNameRoom > maxSocketPath {
			tried = append(tried, dir+": too long for a socket path")
			return "", false
		}
		if err := check(dir); err != nil {
			tried = append(tried, err.Error())
			return "", false
		}
		return dir, true
	}
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" && filepath.IsAbs(rt) {
		if dir, ok := try(filepath.Join(rt, "cc"), func(dir string) error {
			if err := checkPrivate(rt); err != nil {
				return fmt.Errorf("XDG_RUNTIME_DIR: %w", err)
			}
			return makePrivate(dir)
		}); ok {
			return dir, nil
		}
	}
	if cache, err := os.UserCacheDir(); err == nil && filepath.IsAbs(cache) {
		if dir, ok := try(filepath.Join(cache, "cc", "run"), func(dir string) error {
			if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
				return err
			}
			return makePrivate(dir)
		}); ok {
			return dir, nil
		}
	}
	name := fmt.Sprintf("cc-%d", os.Geteuid())
	for _, tmp := range []string{os.TempDir(), "/tmp"} {
		if dir, ok := try(filepath.Join(tmp, name), makePrivate); ok {
			return dir, nil
		}
	}
	if dir, err := fallbackSocketDir(); err == nil {
		return dir, nil
	} else {
		tried = append(tried, err.Error())
	}
	return "", fmt.Errorf("ipc: no private directory for sockets: %v", tried)
}

// fallbackSocketDir makes, once per process, a fresh private directory in
// /tmp: for when every named one is taken by another user.
var fallbackSocketDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("/tmp", fmt.Sprintf("cc-%d-", os.Geteuid()))
	if err != nil {
		return "", err
	}
	return dir, checkPrivate(dir)
})

// makePrivate creates dir with mode 0700 unless it exists, tightens the
// mode of an existing one of this user's, and checks it with checkPrivate.
func makePrivate(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR &&
		int(st.Uid) == os.Geteuid() && st.Mode&0o077 != 0 {
		if err := unix.Fchmodat(unix.AT_FDCWD, dir, 0o700, 0); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	return checkPrivate(dir)
}

// checkPrivate returns an error unless dir is a directory (not a symbolic
// link) of this user's with mode 0700 or tighter, in a parent directory
// that only its owner (this user or root) can change, or that is sticky.
func checkPrivate(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to this user (%d)", dir, st.Uid, os.Geteuid())
	case st.Mode&0o077 != 0:
		return fmt.Errorf("%s has mode %#o, not 0700", dir, st.Mode&0o7777)
	}
	parent := filepath.Dir(dir)
	if err := unix.Stat(parent, &st); err != nil {
		return &os.PathError{Op: "stat", Path: parent, Err: err}
	}
	if int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("%s belongs to uid %d", parent, st.Uid)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("%s can be changed by other users (mode %#o)", parent, st.Mode&0o7777)
	}
	return nil
}

// staleSocketDirs lists where RemoveStaleSockets looks: the private
// directory, and the temporary directories sockets went to before it.
func staleSocketDirs() []string {
	var dirs []string
	if dir, err := SocketDir(); err == nil {
		dirs = append(dirs, dir)
	}
	return append(dirs, os.TempDir(), "/tmp")
}
