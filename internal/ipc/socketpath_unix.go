//go:build !windows

package ipc

import "os"

// socketDirs lists where SocketPath may put sockets, most preferred first.
func socketDirs() []string {
	return []string{os.TempDir(), "/tmp"}
}
