package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fleet places sandboxes on a set of network helpers: each New goes to the
// helper with the most free capacity for this client (each helper reports
// its own), skipping helpers that are down or full; a helper that comes
// back is used again. The helpers are given (NewFleet) or found in DNS and
// refreshed (FleetFromDNS). A Fleet is safe for concurrent use.
type Fleet struct {
	dns *fleetDNS // nil: a fixed set

	mu      sync.Mutex
	members []*fleetMember // guarded by mu
	next    int            // guarded by mu: where ties start, so ties spread
	closed  bool           // guarded by mu
}

// fleetMember is one helper of a fleet.
type fleetMember struct {
	addr    string
	mu      sync.Mutex
	remote  *Remote   // guarded by mu; nil until dialed (FleetFromDNS)
	gone    bool      // guarded by mu: no longer in DNS; used for nothing new
	closed  bool      // guarded by mu: the fleet is closed; never dialed again
	dialErr error     // guarded by mu: the last dial's failure, given again until retryAt
	retryAt time.Time // guarded by mu
}

// capacityTimeout bounds how long Fleet.New waits for the helpers'
// capacities: a helper slower than that counts as down for this
// placement.
const capacityTimeout = 5 * time.Second

// redialAfter is how long a helper that could not be dialed is taken for
// down before it is dialed again: a fleet that DNS filled with addresses
// where nothing answers does not dial them all on every New.
const redialAfter = 10 * time.Second

// surveyWidth bounds the helpers a survey asks at once.
const surveyWidth = 64

// maxReasons bounds the reasons an error of Fleet.New lists one by one.
const maxReasons = 16

// NewFleet returns a fleet over remotes. Closing the fleet closes them.
func NewFleet(remotes ...*Remote) *Fleet {
	f := &Fleet{}
	for _, r := range remotes {
		f.members = append(f.members, &fleetMember{addr: r.Addr(), remote: r})
	}
	return f
}

// Remotes returns the helpers of the fleet that are dialed now.
func (f *Fleet) Remotes() []*Remote {
	var out []*Remote
	for _, m := range f.snapshot() {
		m.mu.Lock()
		if m.remote != nil && !m.gone {
			out = append(out, m.remote)
		}
		m.mu.Unlock()
	}
	return out
}

func (f *Fleet) snapshot() []*fleetMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

// candidate is a helper with what it reported.
type candidate struct {
	m   *fleetMember
	r   *Remote
	cap RemoteCapacity
	err error
}

// survey asks every helper of the fleet for its capacity (surveyWidth at
// once, capacityTimeout in all), and returns those that answered with
// room, most free first, and why the others cannot take a sandbox now.
func (f *Fleet) survey(ctx context.Context) ([]candidate, []string) {
	members := f.snapshot()
	f.mu.Lock()
	start := f.next
	f.next++
	f.mu.Unlock()
	cs := make([]candidate, len(members))
	var wg sync.WaitGroup
	width := make(chan struct{}, surveyWidth)
	sctx, cancel := context.WithTimeout(ctx, capacityTimeout) // the whole survey's
	defer cancel()
	for i, m := range members {
		width <- struct{}{}
		wg.Go(func() {
			defer func() { <-width }()
			began := time.Now()
			c := candidate{m: m}
			c.r, c.err = f.dial(sctx, m)
			// Its own failure (not the caller's end, nor the survey's
			// before it had its chance) marks it down for a while.
			if c.err != nil && ctx.Err() == nil && (sctx.Err() == nil || time.Since(began) >= capacityTimeout/2) {
				m.unreachable(c.err)
			}
			if c.err == nil {
				c.cap, c.err = c.r.Capacity(sctx)
			}
			if c.cap.Max > 0 { // a helper's word for its room is bounded by its own figures
				c.cap.Free = min(c.cap.Free, max(c.cap.Max-c.cap.Running, 0))
			}
			cs[i] = c
		})
	}
	wg.Wait()
	var ok []candidate
	var why []string
	for k := range cs {
		c := cs[(start+k)%len(cs)] // ties go round the fleet
		switch {
		case c.err != nil:
			why = append(why, c.err.Error())
		case c.cap.Free == 0:
			why = append(why, fmt.Sprintf("helper %s: full (%d of %d sandboxes running)", c.m.addr, c.cap.Running, c.cap.Max))
		default:
			ok = append(ok, c)
		}
	}
	slices.SortStableFunc(ok, func(a, b candidate) int { return b.cap.Free - a.cap.Free })
	return ok, why
}

// dial returns the member's Remote, dialing it the first time; nil and an
// error for a member that has left the fleet or cannot be reached.
func (f *Fleet) dial(ctx context.Context, m *fleetMember) (*Remote, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil, fmt.Errorf("helper %s: the fleet is closed", m.addr)
	case m.gone:
		return nil, fmt.Errorf("helper %s: no longer in the fleet", m.addr)
	case m.remote != nil:
		return m.remote, nil
	case f.dns == nil:
		return nil, fmt.Errorf("helper %s: not dialed", m.addr)
	case m.dialErr != nil && time.Now().Before(m.retryAt):
		return nil, m.dialErr
	}
	r, err := DialRemote(ctx, m.addr, f.dns.tlsFor())
	if err != nil {
		return nil, err
	}
	m.remote, m.dialErr = r, nil
	return r, nil
}

// unreachable marks m down for redialAfter, with the dial's error,
// unless it is down already (err is then the one it gave).
func (m *fleetMember) unreachable(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.remote == nil && !time.Now().Before(m.retryAt) {
		m.dialErr, m.retryAt = err, time.Now().Add(redialAfter)
	}
}

// New starts a sandbox of src (see Remote.New) on the helper with the
// most free capacity; when that one fails (it went down, filled up, or
// refused), on the next. A snapshot of a helper's sandbox starts on that
// helper, the only one that has it. It returns an error naming every
// helper's reason when none could take it.
func (f *Fleet) New(ctx context.Context, src Source, opts ...Option) (*Instance, error) {
	if f.isClosed() {
		return nil, errors.New("Fleet.New: the fleet is closed")
	}
	if snap, ok := src.(*Snapshot); ok && snap.onHelper != nil {
		return f.newOnHelper(ctx, snap, opts)
	}
	cs, why := f.survey(ctx)
	for _, c := range cs {
		inst, err := c.r.New(ctx, src, opts...)
		if err == nil {
			return inst, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		why = append(why, err.Error())
	}
	if len(why) == 0 {
		why = append(why, "the fleet has no helpers")
	}
	if len(why) > maxReasons {
		why = append(why[:maxReasons], fmt.Sprintf("and %d more", len(why)-maxReasons))
	}
	return nil, fmt.Errorf("Fleet.New: no helper could start the sandbox: %s", strings.Join(why, "; "))
}

// newOnHelper starts a sandbox of a helper's snapshot on that helper, the
// only one that has it.
func (f *Fleet) newOnHelper(ctx context.Context, snap *Snapshot, opts []Option) (*Instance, error) {
	members := f.snapshot()
	i := slices.IndexFunc(members, func(m *fleetMember) bool { return m.addr == snap.onHelper.addr })
	if i < 0 {
		return nil, fmt.Errorf("Fleet.New: %w (not a helper of this fleet)", snap.onHelper.errHere(snap))
	}
	r, err := f.dial(ctx, members[i])
	if err != nil {
		return nil, fmt.Errorf("Fleet.New: %w", err)
	}
	inst, err := r.New(ctx, snap, opts...)
	if err != nil {
		return nil, fmt.Errorf("Fleet.New: %w", err)
	}
	return inst, nil
}

// Build runs the Dockerfile src on the helper with the most free
// capacity (see Remote.Build); the snapshot stays there, where New starts
// it. It returns the build's error, or one naming every helper's reason
// when none has room.
func (f *Fleet) Build(ctx context.Context, src []byte, opts ...BuildOption) (*Snapshot, error) {
	if f.isClosed() {
		return nil, errors.New("Fleet.Build: the fleet is closed")
	}
	cs, why := f.survey(ctx)
	if len(cs) == 0 {
		if len(why) == 0 {
			why = append(why, "the fleet has no helpers")
		}
		return nil, fmt.Errorf("Fleet.Build: no helper could build: %s", strings.Join(why, "; "))
	}
	snap, err := cs[0].r.Build(ctx, src, opts...)
	if err != nil {
		return nil, fmt.Errorf("Fleet.Build: %w", err)
	}
	return snap, nil
}

// Pull has the first helper that answers pull the image ref names (see
// Remote.Pull); the others pull it when Fleet.New first places it there.
func (f *Fleet) Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	if f.isClosed() {
		return nil, errors.New("Fleet.Pull: the fleet is closed")
	}
	cs, why := f.survey(ctx)
	for _, c := range cs {
		img, err := c.r.Pull(ctx, ref, opts...)
		if err == nil {
			return img, nil
		}
		why = append(why, err.Error())
	}
	return nil, fmt.Errorf("Fleet.Pull: %s", strings.Join(why, "; "))
}

// Close stops refreshing, then closes every helper's Remote (and so every
// sandbox the fleet started); a call under way meanwhile dials no helper
// after Close has passed it, and later calls fail. It returns nil.
func (f *Fleet) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	if f.dns != nil {
		f.dns.stop()
	}
	var wg sync.WaitGroup
	for _, m := range f.snapshot() {
		m.mu.Lock() // after a dial under way: its Remote is closed too
		m.closed = true
		r := m.remote
		m.mu.Unlock()
		if r != nil {
			wg.Go(func() { r.Close() })
		}
	}
	wg.Wait()
	return nil
}

// isClosed reports whether Close was called.
func (f *Fleet) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}
