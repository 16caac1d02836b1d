package sandbox

import (
	"context"
	"time"
)

// bindAgentCalls bounds the calls that wait on the agent for the started
// command (Wait's, and the kills of Cancel and WaitDelay): with a context
// and a WaitDelay, once the context has ended, Cancel has run and
// WaitDelay has passed, exec.Cmd kills the process and Wait sees it die;
// here the agent reports that death, and the calls give up if it has not
// within WaitDelay more (at least agentReportGrace). An agent that no
// longer answers (one the sandbox's own code has frozen, in gVisor, which
// does not shield it) cannot hold Wait past that bound; Wait then returns
// an error that matches the context's. Without WaitDelay, Wait waits for
// the agent as exec.Cmd's waits for a process that does not exit.
func (c *Cmd) bindAgentCalls() {
	if c.ctx == nil || c.ctx.Done() == nil || c.WaitDelay <= 0 {
		return
	}
	c.agentCtx, c.unbind = graceAfter(c.ctx, c.WaitDelay+max(c.WaitDelay, agentReportGrace))
}

// agentReportGrace is the least time an agent is given to answer after a
// command's context has ended: an answering agent takes milliseconds,
// more on a loaded machine. Start's spawn gets that long (an answer that
// comes in time gives the process to Cancel, rather than leave it
// running unknown), and Wait with WaitDelay at least that long after the
// WaitDelay kill.
const agentReportGrace = time.Second

// graceAfter returns a context that ends d after ctx ends, and the
// function that releases it.
func graceAfter(ctx context.Context, d time.Duration) (context.Context, func()) {
	after, giveUp := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d, giveUp) })
	return after, func() {
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
