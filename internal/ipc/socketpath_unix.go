//go:build !windows

package ipc

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/ccsandbox/sandbox/internal/fsutil"
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
		if dir, ok := try(filepath.Join(cache, "cc", "run"), makePrivate); ok {
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

// makePrivate creates dir with mode 0700 unless it exists, and its
// missing parents, only where no other host user controls the way to it
// (fsutil.MkdirOwned, which checks it as checkPrivate does), tightens the
// mode of an existing one of this user's, and checks the mode.
func makePrivate(dir string) error {
	if err := fsutil.MkdirOwned(dir); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return checkMode(dir)
}

// checkPrivate returns an error unless dir is a directory of this user's
// with mode 0700 or tighter that no other host user can reach or replace:
// every directory above it belongs to this user or root and is writable
// by no one else unless sticky, and every symlink on the way is this
// user's or root's (fsutil.CheckOwned).
func checkPrivate(dir string) error {
	if err := fsutil.CheckOwned(dir, true); err != nil {
		return err
	}
	return checkMode(dir)
}

// checkMode returns an error unless dir's mode is 0700 or tighter.
func checkMode(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %#o, not 0700", dir, fi.Mode().Perm())
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
