package hv

import (
	"context"
	"slices"
	"time"
)

// Trace receives the phases of a sandbox's start, as net/http/httptrace's
// ClientTrace receives a request's events. A phase is named after the
// work that ended it ("state dir", "cgroup", "agent exec", "overlay",
// "connect", ...); phases that run in the agent are timed there and
// reported with the rest, in the order they ended. Install one in the
// context given to the start with WithTrace; a start whose context holds
// none pays one context lookup.
type Trace struct {
	// Phase is called once per phase, after the start has ended (whether
	// or not it succeeded), on the goroutine that started it.
	Phase func(name string, d time.Duration)
}

type traceKey struct{}

// WithTrace returns ctx carrying t, for the starts made with it.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// ContextTrace returns the trace ctx carries, or nil.
func ContextTrace(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}

// Clock collects the ends of one start's phases, from this process and
// from the agent (which reports Monotonic times), and hands them to the
// trace once the start is over. A nil *Clock does nothing, so untraced
// starts pay a nil check per phase.
type Clock struct {
	trace *Trace
	start int64 // Monotonic at NewClock
	marks []mark
}

type mark struct {
	name string
	at   int64 // Monotonic
}

// NewClock starts timing a start for the trace ctx carries; it returns
// nil when ctx carries none.
func NewClock(ctx context.Context) *Clock {
	t := ContextTrace(ctx)
	if t == nil || t.Phase == nil {
		return nil
	}
	return &Clock{trace: t, start: Monotonic()}
}

// Mark ends the phase name now.
func (c *Clock) Mark(name string) {
	if c != nil {
		c.marks = append(c.marks, mark{name, Monotonic()})
	}
}

// MarkAt ends the phase name at at, a Monotonic time another process
// (the agent) measured.
func (c *Clock) MarkAt(name string, at int64) {
	if c != nil {
		c.marks = append(c.marks, mark{name, at})
	}
}

// Enabled reports whether the clock records anything.
func (c *Clock) Enabled() bool { return c != nil }

// Done reports the phases to the trace, in the order they ended, each
// lasting from the end of the one before (the first from NewClock).
func (c *Clock) Done() {
	if c == nil {
		return
	}
	slices.SortStableFunc(c.marks, func(a, b mark) int { return int(a.at - b.at) })
	last := c.start
	for _, m := range c.marks {
		c.trace.Phase(m.name, time.Duration(m.at-last))
		last = m.at
	}
	c.marks = nil
}
