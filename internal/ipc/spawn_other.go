//go:build !linux

package ipc

import "os/exec"

// setDieWithParent has no kernel support here; a helper notices its client
// is gone when the control connection closes, and exits.
func setDieWithParent(cmd *exec.Cmd) {}
