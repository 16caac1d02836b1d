//go:build !linux

package ipc

import "os/exec"

// setDieWithParent has no kernel support here; a helper notices its client
// is gone when the control connection closes, and exits.
func setDieWithParent(cmd *exec.Cmd) {}

// diedOfTerminalSignal reports false: a helper here stays in the caller's
// process group, where a terminal's signal can reach it at any time, so
// starting it again would not help.
func diedOfTerminalSignal(error) bool { return false }
