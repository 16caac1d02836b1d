package sandbox

import (
	"context"
	"time"
)

// With a context and a WaitDelay, exec.Cmd kills the process WaitDelay
// after the context ends (and Cancel has run), and Wait sees it die. Here
// the agent reports that death; an agent that no longer answers (one the
// sandbox's own code has frozen, in gVisor, which does not shield it)
// would hold Wait for ever. So the calls that wait on the agent for such
// a command are bounded, each by agentBound() from when it can no longer
// expect a normal answer: Wait's, from the WaitDelay kill (or from its
// own start, when it comes later); a kill's, from its own start once the
// context has ended. Wait then returns an error that matches the
// context's. Without WaitDelay, Wait waits for the agent as exec.Cmd's
// waits for a process that does not exit. Start's spawn always waits: a
// spawn given up could leave a process running that nothing knows of.

// agentReportGrace is the least time an agent is given to answer a call
// bounded so: an answering agent takes milliseconds, more on a loaded
// machine.
const agentReportGrace = time.Second

// agentBound is how long a bounded call waits for the agent.
func (c *Cmd) agentBound() time.Duration { return max(c.WaitDelay, agentReportGrace) }

// bounded reports whether the command's calls on the agent are bounded.
func (c *Cmd) bounded() bool {
	return c.ctx != nil && c.ctx.Done() != nil && c.WaitDelay > 0
}

// bindAgentCalls makes the context Wait's call waits under, ended by
// armBound; Start calls it before anything can kill the process.
func (c *Cmd) bindAgentCalls() {
	if !c.bounded() {
		return
	}
	c.agentCtx, c.unbind = context.WithCancel(context.Background())
}

// armBound ends Wait's call agentBound from now: watchCtx calls it as it
// sends the WaitDelay kill.
func (c *Cmd) armBound() {
	if c.unbind != nil {
		time.AfterFunc(c.agentBound(), c.unbind)
	}
}

// waitCtx returns the context of Wait's call on the agent, and its
// release: unbounded, or one that ends once armBound's bound has ended and
// the call has had agentBound of its own (a Wait that comes late, or just
// before the bound ends, still gets its time).
func (c *Cmd) waitCtx() (context.Context, context.CancelFunc) {
	if c.agentCtx == nil {
		return context.Background(), func() {}
	}
	start := time.Now()
	ctx, giveUp := context.WithCancel(context.Background())
	stop := context.AfterFunc(c.agentCtx, func() {
		time.AfterFunc(c.agentBound()-time.Since(start), giveUp)
	})
	return ctx, func() {
		stop()
		giveUp()
	}
}

// killCtx returns the context of a kill, and its release: once the
// context of a bounded command has ended (Cancel, the WaitDelay kill, a
// late Signal), agentBound of its own, so that a frozen agent cannot hold
// the context's watcher.
func (c *Cmd) killCtx() (context.Context, context.CancelFunc) {
	if !c.bounded() || c.ctx.Err() == nil {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), c.agentBound())
}
