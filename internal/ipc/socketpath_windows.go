//go:build windows

package ipc

import (
	"os"
	"path/filepath"
)

// socketDirs lists where SocketPath may put sockets, most preferred first;
// Windows temp paths are often long, so a short one under the volume root
// is the fallback.
func socketDirs() []string {
	return []string{os.TempDir(), filepath.Join(filepath.VolumeName(os.TempDir())+`\`, "Temp")}
}
