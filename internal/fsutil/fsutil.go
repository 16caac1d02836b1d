// Package fsutil holds small file system helpers the SDK's packages share.
package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// RemoveAll removes path like os.RemoveAll, also when the tree holds
// directories whose permissions forbid reading or writing them (an overlay
// work directory, a sandbox's chmod 000): it makes such directories
// accessible to their owner and tries again.
func RemoveAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700)
		} else if err != nil {
			// A directory we could not read: open it up and retry once.
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
