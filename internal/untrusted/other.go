//go:build !linux

package untrusted

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrNoOpenat2 matches the error of Open on systems without openat2.
var ErrNoOpenat2 = errors.New("reading a sandbox's files safely needs openat2 (Linux 5.6 or later)")

// Dir is an open directory of an untrusted tree (Linux only).
type Dir struct{}

// Open fails: untrusted trees exist only on Linux.
func Open(root string) (*Dir, error) { return nil, ErrNoOpenat2 }

// Close does nothing.
func (d *Dir) Close() error { return nil }

// RemoveAll is os.RemoveAll: no sandbox writes trees on other systems.
func RemoveAll(root string) error {
	// treelint:trusted-path no sandbox runs on these systems
	return os.RemoveAll(root)
}

// RemoveAllAt is os.RemoveAll of dir's entry name.
func RemoveAllAt(dir *os.File, name string) error {
	// treelint:trusted-path no sandbox runs on these systems
	return os.RemoveAll(filepath.Join(dir.Name(), name))
}
