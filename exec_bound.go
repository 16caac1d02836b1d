package sandbox

import (
	"context"
	"time"
)

// bindAgentCalls bounds the calls that wait on the agent for the started
// command (Wait's, and the kills of Cancel and WaitDelay): with a context
// and a WaitDelay, they give up WaitDelay after the context ends, as
// exec.Cmd's Wait stops waiting then. An agent that no longer answers
// (one the sandbox's own code has frozen, in gVisor, which does not
// shield it) cannot hold Wait past that bound; Wait then returns an error
// that matches the context's. Without WaitDelay, Wait waits for the agent
// as exec.Cmd's waits for a process that does not exit.
func (c *Cmd) bindAgentCalls() {
	if c.ctx == nil || c.ctx.Done() == nil || c.WaitDelay <= 0 {
		return
	}
	ctx, giveUp := context.WithCancel(context.Background())
	stop := context.AfterFunc(c.ctx, func() { time.AfterFunc(c.WaitDelay, giveUp) })
	c.agentCtx = ctx
	c.unbind = func() {
		stop()
		giveUp()
	}
}

// agentCallCtx returns the context of a call that waits on the agent for
// the command: the bound bindAgentCalls set, or none.
func (c *Cmd) agentCallCtx() context.Context {
	if c.agentCtx == nil {
		return context.Background()
	}
	return c.agentCtx
}

// gaveUp reports whether the bound has ended the calls on the agent.
func (c *Cmd) gaveUp() bool {
	return c.agentCtx != nil && c.agentCtx.Err() != nil && c.ctx.Err() != nil
}
