package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Pool keeps sandboxes started ahead of need, all from one source with one
// set of options, so that its New hands one out without waiting for a
// start: an opt-in warm pool. Every sandbox it hands out belongs to the
// caller, who closes it; the pool starts a replacement at once. Spare
// sandboxes use memory and a process each while they wait. A Pool is safe
// for concurrent use.
type Pool struct {
	source  Source
	opts    newOptions    // as New would resolve them, without the timeout
	timeout time.Duration // WithTimeout's, armed when New hands a sandbox out

	ready   chan poolStart // a started sandbox, or why a start failed
	waiting atomic.Int32   // fillers blocked handing a sandbox to ready
	stop    context.CancelFunc
	closed  <-chan struct{} // the fillers' context's Done: closed by Close
	fillers sync.WaitGroup

	errMu    sync.Mutex
	closeErr error // guarded by errMu: the first error closing a spare
}

// poolStart is what a filler hands over: a sandbox, or why none started.
type poolStart struct {
	inst *Instance
	err  error
}

// NewPool starts a pool that keeps size sandboxes waiting, each started as
// New(ctx, source, opts...) would start it. It starts the first before it
// returns, so what New would fail with (an option the host cannot honour,
// ErrHypervisorUnavailable) comes back from NewPool; the rest start in the
// background. ctx bounds that first start only: the pool runs until Close.
// With WithTimeout, a sandbox's time counts from when Pool.New hands it
// out, not from its start.
func NewPool(ctx context.Context, source Source, size int, opts ...Option) (*Pool, error) {
	if source == nil {
		return nil, errors.New("sandbox.NewPool: nil source")
	}
	if size < 1 {
		return nil, fmt.Errorf("sandbox.NewPool: size %d, want at least 1", size)
	}
	o, err := resolveNewOptions(opts)
	if err != nil {
		return nil, err
	}
	fillCtx, cancel := context.WithCancel(context.Background())
	p := &Pool{source: source, opts: o, timeout: o.timeout, ready: make(chan poolStart), stop: cancel, closed: fillCtx.Done()}
	p.opts.timeout = 0
	first, err := start(ctx, source, p.opts)
	if err != nil {
		cancel()
		return nil, err
	}
	p.fillers.Add(size)
	go p.fill(fillCtx, first)
	for range size - 1 {
		go p.fill(fillCtx, nil)
	}
	return p, nil
}

// fill keeps one sandbox waiting for New, starting the next when one is
// taken or the waiting one dies, until ctx ends. first, when not nil, is
// handed out before any it starts.
func (p *Pool) fill(ctx context.Context, first *Instance) {
	defer p.fillers.Done()
	next := poolStart{inst: first}
	for {
		if next.inst == nil && next.err == nil {
			next.inst, next.err = start(ctx, p.source, p.opts)
			if next.err != nil && ctx.Err() == nil {
				p.opts.logger.Warn("sandbox pool: a spare sandbox did not start; the next Pool.New returns why", "err", next.err)
			}
		}
		if ctx.Err() != nil {
			p.closeSpare(next.inst)
			return
		}
		var counted int32        // what this filler adds to Ready
		var died <-chan struct{} // nil, so never ready, for a failed start
		if next.inst != nil {
			counted, died = 1, next.inst.Done()
		}
		p.waiting.Add(counted)
		select {
		case p.ready <- next:
			p.waiting.Add(-counted)
			next = poolStart{}
			// A caller blocked in New was made runnable on this thread's
			// queue: let it run before the next start keeps the thread.
			runtime.Gosched()
		case <-died:
			p.waiting.Add(-counted)
			p.dropDead(next.inst)
			next = poolStart{}
		case <-ctx.Done():
			p.waiting.Add(-counted)
			p.closeSpare(next.inst)
			return
		}
	}
}

// closeSpare closes a spare sandbox as the pool closes, keeping the first
// error for Close.
func (p *Pool) closeSpare(inst *Instance) {
	if inst == nil {
		return
	}
	if err := inst.Close(); err != nil {
		p.errMu.Lock()
		if p.closeErr == nil {
			p.closeErr = fmt.Errorf("sandbox.Pool.Close: %w", err)
		}
		p.errMu.Unlock()
	}
}

// dropDead closes a spare sandbox that stopped while it waited, and logs
// why it stopped.
func (p *Pool) dropDead(inst *Instance) {
	reason := inst.Err()
	if err := inst.Close(); err != nil {
		p.opts.logger.Warn("sandbox pool: closing a spare sandbox that had stopped", "id", inst.ID(), "err", err)
	}
	p.opts.logger.Warn("sandbox pool: a spare sandbox stopped while it waited; starting another", "id", inst.ID(), "reason", reason)
}

// New hands out a started sandbox: a waiting one at once, or else the next
// to finish starting. The caller owns it and must Close it. New returns
// ctx.Err() when ctx ends first, an error matching ErrAlreadyClosed after
// Close, and the error of a start that failed in the background.
func (p *Pool) New(ctx context.Context) (*Instance, error) {
	for {
		select {
		case <-p.closed:
			return nil, fmt.Errorf("sandbox.Pool.New: %w", ErrAlreadyClosed)
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var r poolStart
		select {
		case r = <-p.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.closed:
			return nil, fmt.Errorf("sandbox.Pool.New: %w", ErrAlreadyClosed)
		}
		if r.err != nil {
			return nil, r.err
		}
		inst := r.inst
		if inst.alive() != nil {
			p.dropDead(inst) // it stopped on its way here: take the next
			continue
		}
		if p.timeout > 0 {
			if err := inst.runner.SetTimeout(p.timeout); err != nil {
				// Stopped just now (or its helper went): take the next.
				if errors.Is(err, ErrNotRunning) || errors.Is(err, ipc.ErrTransport) {
					p.dropDead(inst)
					continue
				}
				inst.Close()
				return nil, fmt.Errorf("sandbox.Pool.New: %w", err)
			}
		}
		return inst, nil
	}
}

// Ready returns how many started sandboxes are waiting for New: a snapshot,
// which may still count one being handed out or one that has just stopped.
func (p *Pool) Ready() int { return int(p.waiting.Load()) }

// Close stops the sandboxes still waiting (or starting) in the pool and
// waits until they are gone; sandboxes New handed out are left to their
// owners. Later calls to New fail with ErrAlreadyClosed. Close is safe to
// call more than once and returns the first error met closing a spare.
func (p *Pool) Close() error {
	p.stop()
	p.fillers.Wait()
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.closeErr
}
