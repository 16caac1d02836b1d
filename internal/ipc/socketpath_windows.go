//go:build windows

package ipc

import (
	"os"
	"path/filepath"
)

// SocketDir returns the directory for helper sockets: the user's own
// temporary directory, or a short directory under the volume root when
// that path is too long for sun_path. It returns an error when neither
// can be made.
func SocketDir() (string, error) {
	dir := os.TempDir()
	if len(dir)+len(`\cc-4194304-ffffffff-999999.sock`) > maxSocketPath {
		dir = filepath.Join(filepath.VolumeName(dir)+`\`, "Temp")
	}
	return dir, os.MkdirAll(dir, 0o700)
}

// staleSocketDirs lists where RemoveStaleSockets looks.
func staleSocketDirs() []string {
	dir, _ := SocketDir()
	return []string{dir}
}
