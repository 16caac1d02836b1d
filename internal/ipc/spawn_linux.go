package ipc

import (
	"os/exec"
	"syscall"
)

// setDieWithParent makes the kernel kill cmd's process when this one dies.
func setDieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
