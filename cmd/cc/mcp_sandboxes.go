package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox"
)

// errServerClosing is the error of calls that arrive while the server
// shuts down.
var errServerClosing = errors.New("the server is shutting down")

// sandboxSet holds the sandboxes an MCP session made, at most max at once,
// and closes them all when the session ends.
type sandboxSet struct {
	max      int
	maxCalls int

	ctx    context.Context // ends when closeAll starts: cancels work in progress
	cancel context.CancelFunc
	calls  sync.WaitGroup // tool calls in progress

	mu      sync.Mutex
	byID    map[string]*openSandbox // guarded by mu
	gone    map[string]string       // guarded by mu: why each closed sandbox went
	pending int                     // guarded by mu: creations under way
	running int                     // guarded by mu: tool calls in progress
	closed  bool                    // guarded by mu
}

// openSandbox is one sandbox of the set.
type openSandbox struct {
	inst    *sandbox.Instance
	release func() // releases its source, after the instance is closed
	image   string
	network bool
	created time.Time
}

func newSandboxSet(max, maxCalls int) *sandboxSet {
	ctx, cancel := context.WithCancel(context.Background())
	return &sandboxSet{max: max, maxCalls: maxCalls, ctx: ctx, cancel: cancel, byID: map[string]*openSandbox{}, gone: map[string]string{}}
}

// begin starts a tool call: it returns a context that ends with ctx or
// when the set closes, and a function to call when the call is over. It
// fails once the set is closing, and while maxCalls calls are in progress.
func (s *sandboxSet) begin(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, errServerClosing
	}
	if s.running >= s.maxCalls {
		// Refused, not queued: a queued call would hold its arguments.
		return nil, nil, fmt.Errorf("%d tool calls are in progress, the most this server takes at once: wait for one to end", s.running)
	}
	s.running++
	s.calls.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
		s.calls.Done()
	}, nil
}

// reserve takes a place for a sandbox about to start; add or unreserve
// gives it back. Sandboxes that stopped by themselves (their time limit)
// are closed first, so they hold no place.
func (s *sandboxSet) reserve() error {
	s.mu.Lock()
	var stopped []*openSandbox
	for id, sb := range s.byID {
		select {
		case <-sb.inst.Done():
			reason := "it stopped"
			if err := sb.inst.Err(); err != nil {
				reason = "it stopped: " + err.Error()
			}
			stopped = append(stopped, s.detachLocked(id, reason))
		default:
		}
	}
	n := len(s.byID) + s.pending
	if n < s.max {
		s.pending++
	}
	s.mu.Unlock()
	for _, sb := range stopped {
		sb.close()
	}
	if n >= s.max {
		return fmt.Errorf("%d sandboxes are open, the most this server allows (--max-sandboxes): close one first", n)
	}
	return nil
}

func (s *sandboxSet) unreserve() {
	s.mu.Lock()
	s.pending--
	s.mu.Unlock()
}

// add records a started sandbox in the place reserve took. When the set
// closed meanwhile it closes the sandbox and fails.
func (s *sandboxSet) add(sb *openSandbox) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	if s.closed {
		sb.close()
		return errServerClosing
	}
	s.byID[sb.inst.ID()] = sb
	return nil
}

// get returns the open sandbox id.
func (s *sandboxSet) get(id string) (*openSandbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getLocked(id)
}

func (s *sandboxSet) getLocked(id string) (*openSandbox, error) {
	if id == "" {
		return nil, errors.New("no sandbox id given")
	}
	sb, ok := s.byID[id]
	if !ok {
		if why, ok := s.gone[id]; ok {
			return nil, fmt.Errorf("sandbox %s is closed: %s", id, why)
		}
		return nil, fmt.Errorf("no sandbox %q: create_sandbox makes one, list_sandboxes lists them", id)
	}
	return sb, nil
}

// remove closes the sandbox id and forgets it.
func (s *sandboxSet) remove(id string) error {
	s.mu.Lock()
	sb, err := s.getLocked(id)
	if err == nil {
		s.detachLocked(id, "close_sandbox closed it")
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return sb.close()
}

// detachLocked forgets the sandbox id, remembering why, and returns it for
// the caller to close.
func (s *sandboxSet) detachLocked(id, why string) *openSandbox {
	sb := s.byID[id]
	delete(s.byID, id)
	s.gone[id] = why
	return sb
}

// list returns the open sandboxes, oldest first.
func (s *sandboxSet) list() []*openSandbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*openSandbox, 0, len(s.byID))
	for _, sb := range s.byID {
		out = append(out, sb)
	}
	slices.SortFunc(out, func(a, b *openSandbox) int { return a.created.Compare(b.created) })
	return out
}

// closeAll refuses new calls, cancels those under way, closes every
// sandbox (so that no call waits on one), and waits for the calls to
// return. It returns the errors of the Closes.
func (s *sandboxSet) closeAll() error {
	s.mu.Lock()
	s.closed = true
	var all []*openSandbox
	for id := range s.byID {
		all = append(all, s.detachLocked(id, "the server shut down"))
	}
	s.mu.Unlock()
	s.cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(all))
	for k, sb := range all {
		wg.Go(func() {
			if err := sb.close(); err != nil {
				errs[k] = fmt.Errorf("closing sandbox %s: %w", sb.inst.ID(), err)
			}
		})
	}
	wg.Wait()
	s.calls.Wait()
	return errors.Join(errs...)
}

// close closes the sandbox, then releases its source.
func (sb *openSandbox) close() error {
	err := sb.inst.Close()
	sb.release()
	return err
}
