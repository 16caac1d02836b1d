package sandbox

import (
	"os"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Run's fast path: where descriptors pass, a command that needs nothing
// from the host while it runs starts and is waited for in one exchange
// with the agent (MsgCmdRun), answered at the exit.

// runsAtOnce reports whether Run can start the command and wait for it in
// a single exchange with the agent (MsgCmdRun), which answers at the exit:
// on the descriptor path, without a pty (whose master comes with the start)
// or a context that could cancel the run (which needs the process's handle
// to kill it), and without a goroutine feeding stdin, which could block a
// failed start.
func (c *Cmd) runsAtOnce() bool {
	if c.inst == nil || !c.inst.fdOK || c.Tty || (c.ctx != nil && c.ctx.Done() != nil) {
		return false
	}
	if c.Stdin == nil {
		return true
	}
	_, isFile := c.Stdin.(*os.File)
	return isFile
}

// runAtOnce sends MsgCmdRun with the copying goroutines already running
// (the output pipes fill while the process runs) and finishes as Wait
// does once the agent answers with the exit.
func (c *Cmd) runAtOnce(spec *ipc.CmdSpec, files []*os.File) error {
	c.startGoroutines()
	ans, err := c.inst.agent.CmdRun(spec, files)
	c.io.closeChild()      // the process holds them, or never will
	c.released.Store(true) // the agent keeps no handle
	if err != nil {
		if c.goroutineErr != nil {
			closeAll(c.parentIOPipes)
			<-c.goroutineErr
		}
		c.parentIOPipes = nil
		return c.startErr(err)
	}
	c.Process = &Process{Pid: int(ans.Pid), cmd: c}
	return c.finish(&ProcessState{status: ans.Status}, nil)
}
