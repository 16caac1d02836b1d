package ipc

import (
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
