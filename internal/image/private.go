package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// checkRoot refuses a store root another host user could control: a
// directory of theirs, a symlink of theirs (to anything: a store at
// /tmp/cc-cache, planted as a link to /etc, would have been made private
// and filled there), or one in a directory they may change (rename the
// store away and put their own in its place), unless that directory is
// sticky. A missing root is no error when missingOK; its parent is
// checked all the same.
func checkRoot(root string, missingOK bool) error {
	me := os.Geteuid()
	parent := filepath.Dir(root)
	var st unix.Stat_t
	if err := unix.Stat(parent, &st); err == nil {
		if int(st.Uid) != me && st.Uid != 0 {
			return fmt.Errorf("opening layer store %s: its directory %s belongs to uid %d, not to this user (%d) or root", root, parent, st.Uid, me)
		}
		if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
			return fmt.Errorf("opening layer store %s: its directory %s can be changed by other users (mode %#o)", root, parent, st.Mode&0o7777)
		}
	} else if !errors.Is(err, unix.ENOENT) || !missingOK {
		return fmt.Errorf("opening layer store %s: %w", root, &fs.PathError{Op: "stat", Path: parent, Err: err})
	}
	if err := unix.Lstat(root, &st); err != nil {
		if errors.Is(err, unix.ENOENT) && missingOK {
			return nil
		}
		return fmt.Errorf("opening layer store: %w", &fs.PathError{Op: "lstat", Path: root, Err: err})
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if int(st.Uid) != me && st.Uid != 0 {
			return fmt.Errorf("opening layer store %s: it is a symlink of uid %d, not of this user (%d) or root", root, st.Uid, me)
		}
		if err := unix.Stat(root, &st); err != nil {
			return fmt.Errorf("opening layer store: %w", &fs.PathError{Op: "stat", Path: root, Err: err})
		}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("opening layer store %s: not a directory", root)
	case int(st.Uid) != me:
		return fmt.Errorf("opening layer store %s: it belongs to uid %d, not to this user (%d)", root, st.Uid, me)
	}
	return nil
}

// makePrivate makes the store's root 0700, whoever made it: layers keep
// the setuid and setgid bits of their images (a sandbox needs them), and
// sandboxes' writable layers live below it too, so no other host user may
// reach any of it. Sandboxes and VMs reach their layers through
// descriptors the host opens, never by walking these directories.
func (s *Store) makePrivate() error {
	fi, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("opening layer store: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(s.root, 0o700); err != nil {
		return fmt.Errorf("opening layer store: %s is open to other users (%v) and cannot be made private: %w", s.root, fi.Mode().Perm(), err)
	}
	s.log.Info("layer store made private to its owner", "dir", s.root, "was", fi.Mode().Perm())
	return nil
}
