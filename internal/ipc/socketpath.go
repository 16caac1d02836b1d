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
// unique to this call, in this user's private socket directory (see
// [SocketDir]). When no private directory can be had, it returns a path in
// os.TempDir() (the error then shows when a helper starts).
func SocketPath() string {
	p, err := socketPath()
	if err != nil {
		return filepath.Join(os.TempDir(), socketName())
	}
	return p
}

// socketPath returns a new socket path in SocketDir, or why there is none.
func socketPath() (string, error) {
	dir, err := SocketDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, socketName()), nil
}

// socketName returns a new socket file name, unique in this process.
func socketName() string {
	return fmt.Sprintf("cc-%d-%x-%d.sock", os.Getpid(), time.Now().UnixNano()&0xffffffff, socketCounter.Add(1))
}

// removeStaleSocket removes a leftover socket file at path, so a new server
// can bind there. Other kinds of file are left alone (the bind then fails).
func removeStaleSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
}
