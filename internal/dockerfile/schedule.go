package dockerfile

import (
	"context"
	"errors"
	"sync"
)

// Stages run in goroutines of their own, as soon as the stages they need
// have finished, at most Options.Parallelism at once: BuildKit's solver
// does the same with its graph of steps. The stages a stage needs are
// known before it starts (its FROM, COPY --from and RUN --mount from=,
// see deps), but for those ONBUILD triggers name, which it waits for as
// it meets them, giving its place to another stage meanwhile.

// launch starts building s in a goroutine of its own, once.
func (b *builder) launch(s *stage) {
	s.start.Do(func() {
		b.wg.Add(1)
		go b.runStage(s)
	})
}

// await returns the result of s, launching it when nothing has yet. A
// stage's goroutine that waits (holding a slot) gives its slot up while
// it waits.
func (b *builder) await(s *stage, from *stage) (Ref, error) {
	b.launch(s)
	select {
	case <-s.done:
		return s.result, s.err
	default:
	}
	if from != nil {
		b.slots.release()
		defer func() {
			// Taken back whatever happens: runStage releases it.
			b.slots.acquireNow()
		}()
	}
	<-s.done
	return s.result, s.err
}

// runStage builds s once the stages it needs have been built, holding a
// slot while it runs. A failure cancels the build's other stages.
func (b *builder) runStage(s *stage) {
	defer b.wg.Done()
	defer close(s.done)
	if b.opts.Parallelism > 1 {
		for _, d := range s.deps {
			b.launch(d)
		}
	}
	for _, d := range s.deps {
		b.launch(d) // with one slot, one after the other, in order
		select {
		case <-d.done:
			if d.err != nil {
				s.err = d.err
				return
			}
		case <-b.ctx.Done():
			s.err = b.ctx.Err()
			return
		}
	}
	if err := b.slots.acquire(b.ctx, s.index); err != nil {
		s.err = err
		return
	}
	s.result, s.err = b.buildStage(s)
	b.slots.release()
	if s.err != nil {
		b.cancel(s.err)
	}
}

// buildErr is the error of a build whose target failed with err: the
// first stage's failure rather than the cancellations it caused.
func (b *builder) buildErr(parent context.Context, err error) error {
	if err == nil || parent.Err() != nil || !errors.Is(err, context.Canceled) {
		return err
	}
	if cause := context.Cause(b.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// slots hands out the right to run to at most n stages at once, to the
// waiting stage that comes first in the Dockerfile, so that a build with
// one slot runs its stages in their order.
type slots struct {
	mu      sync.Mutex
	free    int
	waiting map[int]chan struct{} // by stage index; closed when given a slot
}

func newSlots(n int) *slots {
	if n < 1 {
		n = 1
	}
	return &slots{free: n, waiting: map[int]chan struct{}{}}
}

// acquire waits for a slot for stage idx, or until ctx ends.
func (sl *slots) acquire(ctx context.Context, idx int) error {
	sl.mu.Lock()
	if sl.free > 0 && len(sl.waiting) == 0 {
		sl.free--
		sl.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	sl.waiting[idx] = ch
	sl.handOutLocked()
	sl.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		sl.mu.Lock()
		defer sl.mu.Unlock()
		select {
		case <-ch: // given one meanwhile: give it back
			sl.free++
			sl.handOutLocked()
		default:
			delete(sl.waiting, idx)
		}
		return ctx.Err()
	}
}

// acquireNow takes a slot back for a stage that gave its own up while
// waiting for another: it may exceed the bound for a moment rather than
// wait, since the stage is in the middle of a step.
func (sl *slots) acquireNow() {
	sl.mu.Lock()
	sl.free--
	sl.mu.Unlock()
}

// release gives a slot back.
func (sl *slots) release() {
	sl.mu.Lock()
	sl.free++
	sl.handOutLocked()
	sl.mu.Unlock()
}

// handOutLocked gives free slots to the first waiting stages.
func (sl *slots) handOutLocked() {
	for sl.free > 0 && len(sl.waiting) > 0 {
		first := -1
		for idx := range sl.waiting {
			if first < 0 || idx < first {
				first = idx
			}
		}
		close(sl.waiting[first])
		delete(sl.waiting, first)
		sl.free--
	}
}
