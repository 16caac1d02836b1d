package image

import (
	"fmt"
	"os"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// prepareRoot makes the store's root when it is missing and refuses one
// another host user could control, before anything is read or made in it
// (fsutil.MkdirOwned): a root reached through a directory of theirs or
// one they may write that is not sticky (they could swap what is below
// it), or through a symlink of theirs (a link planted at a shared path
// such as /tmp/cc-cache, or at one of its parents, pointing at a
// directory of root's, would have had that made private and filled), and
// a root that is not this user's.
func prepareRoot(root string) error {
	if err := fsutil.MkdirOwned(root); err != nil {
		return fmt.Errorf("opening layer store: %w", err)
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
