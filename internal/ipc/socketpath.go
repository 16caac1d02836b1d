package ipc

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// socketCounter makes socket paths unique within this process.
var socketCounter atomic.Uint64

// maxSocketPath is the longest socket path that fits sun_path on every
// supported system (104 bytes on macOS and the BSDs, 108 on Linux and
// Windows, less the terminating NUL).
const maxSocketPath = 103

// SocketPath returns a new platform-appropriate Unix domain socket path,
// unique to this call. It lies in os.TempDir() when that leaves the path
// short enough for sun_path, and in a shorter fallback directory otherwise.
func SocketPath() string {
	name := fmt.Sprintf("cc-%d-%x-%d.sock", os.Getpid(), time.Now().UnixNano()&0xffffffff, socketCounter.Add(1))
	for _, dir := range socketDirs() {
		p := filepath.Join(dir, name)
		if len(p) <= maxSocketPath {
			return p
		}
	}
	return name // relative to the working directory: the last resort
}

// removeStaleSocket removes a leftover socket file at path, so a new server
// can bind there. Other kinds of file are left alone (the bind then fails).
func removeStaleSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
}
