package ipc

import (
	"errors"
	"os/exec"
	"syscall"
)

// setDieWithParent makes the kernel kill cmd's process when this one dies,
// and only then: the helper gets a process group of its own, so that a
// terminal's ^C, which goes to this program's group, leaves it to this
// program's handler to close its sandboxes.
func setDieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid = true
}

// diedOfTerminalSignal reports whether err, from waiting for a helper,
// says it died of SIGINT or SIGQUIT: what a terminal sends to its
// foreground group, which the helper belongs to from its fork until the
// child side of the fork makes it a group of its own. The Go runtime
// blocks signals over that stretch but the child restores them before
// exec, so one that arrived then is delivered with the default action.
func diedOfTerminalSignal(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && (ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGQUIT)
}
