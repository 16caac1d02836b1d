// Package engine starts sandboxes on a backend and connects to their agents.
// The public package uses it in process, and the helper uses it on the
// public package's behalf; both then speak the agent's protocol over the
// client it returns.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/untrusted"

	_ "github.com/ccsandbox/sandbox/internal/agent" // the agent is this binary, re-executed
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Spec describes an instance to start.
type Spec struct {
	Layers   []string  // read-only layers, lowest first
	Binds    []hv.Bind // host paths to mount inside
	Hostname string    // "" : the instance id
	MemoryMB uint64
	CPUs     float64
	PidsMax  int64
	NoFile   uint64
	DiskMB   uint64
	// Unconfined: no seccomp filter or capability bounding (benchmarks).
	Unconfined bool
	Network    bool          // see hv.Config.Network
	Timeout    time.Duration // 0: none
	Kernel     string        // the guest kernel, for backends that boot one
	// StateRoot holds the instances' state directories; it must be on the
	// same file system as the layer store, so snapshots can move layers.
	StateRoot string
	CacheDir  string     // the SDK's cache directory, for backends' own caches
	Backend   hv.Backend // nil: the namespace backend
	Logger    *slog.Logger
}

// Instance is a started sandbox and the client to its agent.
type Instance struct {
	id       string
	sb       hv.Sandbox
	caps     hv.Capabilities
	client   *ipc.Client
	stateDir string
	release  func() // gives the state directory up once removed (createStateDir)
	log      *slog.Logger

	done    chan struct{} // closed when the instance has stopped
	watched chan struct{} // closed when the watch goroutine has ended

	mu     sync.Mutex
	reason error       // guarded by mu: why it stopped, set before done closes
	closed bool        // guarded by mu
	timer  *time.Timer // guarded by mu: WithTimeout's, nil when none
}

// Start starts an instance and connects to its agent.
func Start(ctx context.Context, spec Spec) (*Instance, error) {
	if spec.StateRoot == "" {
		return nil, errors.New("engine: no state root")
	}
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backend := spec.Backend
	if backend == nil {
		b, err := LookupBackend("")
		if err != nil {
			return nil, err
		}
		backend = b
	}
	clock := hv.NewClock(traceContext(ctx, log))
	defer clock.Done()
	sweepOnce(spec.StateRoot, log)
	id := newID()
	stateDir, release, err := createStateDir(spec.StateRoot, id)
	if err != nil {
		return nil, err
	}
	clock.Mark("state dir")
	hostname := spec.Hostname
	if hostname == "" {
		hostname = id
	}
	sb, err := backend.Start(ctx, &hv.Config{
		ID: id, StateDir: stateDir, Layers: HighestOnly(spec.Layers), Binds: spec.Binds, Hostname: hostname,
		IDMap: idmap.Current(), MemoryMB: spec.MemoryMB, CPUs: spec.CPUs, PidsMax: spec.PidsMax, NoFile: spec.NoFile, DiskMB: spec.DiskMB, Unconfined: spec.Unconfined, Network: spec.Network, Kernel: spec.Kernel, CacheDir: spec.CacheDir, Logger: log, Clock: clock,
	})
	if err != nil {
		untrusted.RemoveAll(stateDir)
		release()
		return nil, err
	}
	caps := backend.Capabilities()
	var client *ipc.Client
	if caps.AgentServesUntilDone {
		client, err = ipc.ConnectWatched(ctx, sb.Dial, sb.Done())
	} else {
		client, err = ipc.Connect(ctx, sb.Dial)
	}
	if err != nil {
		sb.Stop()
		untrusted.RemoveAll(stateDir)
		release()
		return nil, fmt.Errorf("connecting to the sandbox agent: %w", err)
	}
	clock.Mark("connect")
	inst := &Instance{
		id: id, sb: sb, caps: caps, client: client, stateDir: stateDir, release: release, log: log,
		done: make(chan struct{}), watched: make(chan struct{}),
	}
	if spec.Timeout > 0 {
		inst.SetTimeout(spec.Timeout) // cannot fail: nothing has stopped it yet
	}
	go inst.watch()
	log.Debug("sandbox started", "id", id, "backend", backend.Name(), "layers", len(spec.Layers))
	return inst, nil
}

// traceContext returns ctx, with a trace that logs each phase of the start
// at debug level when log logs debug messages and ctx carries no trace of
// its own.
func traceContext(ctx context.Context, log *slog.Logger) context.Context {
	if hv.ContextTrace(ctx) != nil || !log.Enabled(ctx, slog.LevelDebug) {
		return ctx
	}
	return hv.WithTrace(ctx, &hv.Trace{Phase: func(name string, d time.Duration) {
		log.Debug("sandbox start phase", "phase", name, "took", d)
	}})
}

// ID returns the instance's id.
func (i *Instance) ID() string { return i.id }

// Client returns the client connected to the agent.
func (i *Instance) Client() *ipc.Client { return i.client }

// Sandbox returns the backend's sandbox.
func (i *Instance) Sandbox() hv.Sandbox { return i.sb }

// Capabilities returns what the backend can do.
func (i *Instance) Capabilities() hv.Capabilities { return i.caps }

// Done returns a channel closed once the instance has stopped.
func (i *Instance) Done() <-chan struct{} { return i.done }

// Err returns why the instance stopped: nil while it runs and after Close,
// an error matching ipc.ErrTimeout when its time ran out, ipc.ErrOutOfMemory
// when it was killed for memory, or what else ended it.
func (i *Instance) Err() error {
	select {
	case <-i.done:
	default:
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.reason
}

// watch records the end of the sandbox, whatever causes it.
func (i *Instance) watch() {
	defer close(i.watched)
	select {
	case <-i.sb.Done():
	case <-i.client.Done():
		// The agent hung up without the sandbox ending: treat it as dead.
		i.sb.Stop()
	}
	i.mu.Lock()
	if i.reason == nil && !i.closed {
		if err := i.sb.Err(); err != nil {
			i.reason = err
		} else {
			i.reason = fmt.Errorf("sandbox %s: %w", i.id, ipc.ErrNotRunning)
		}
	}
	if i.timer != nil {
		i.timer.Stop()
	}
	i.mu.Unlock()
	i.client.Close()
	close(i.done)
}

// SetTimeout stops the instance d from now, with a reason matching
// ipc.ErrTimeout; it replaces any timeout set before. It returns an error
// matching ipc.ErrNotRunning when the instance has already stopped or been
// closed.
func (i *Instance) SetTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("engine: timeout %v", d)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	select {
	case <-i.done:
		return fmt.Errorf("sandbox %s: %w", i.id, ipc.ErrNotRunning)
	default:
	}
	if i.closed || i.reason != nil {
		return fmt.Errorf("sandbox %s: %w", i.id, ipc.ErrNotRunning)
	}
	if i.timer != nil {
		i.timer.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		i.mu.Lock()
		current := i.timer == t // not replaced after it fired
		i.mu.Unlock()
		if current {
			i.stop(ipc.ErrTimeout)
		}
	})
	i.timer = t
	return nil
}

// stop ends the sandbox with reason.
func (i *Instance) stop(reason error) {
	i.mu.Lock()
	if i.reason == nil && !i.closed {
		i.reason = fmt.Errorf("sandbox %s: %w", i.id, reason)
	}
	i.mu.Unlock()
	i.sb.Stop()
}

// Close stops the sandbox, waits until it is gone and removes its state.
// It is safe to call more than once; later calls return nil.
func (i *Instance) Close() error {
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		<-i.watched
		return nil
	}
	i.closed = true
	i.mu.Unlock()
	// Removing the state takes as long as stopping the sandbox on some
	// disks: do both at once. Anything the dying sandbox still writes is
	// caught by the second removal once it is gone.
	i.sb.Kill()
	removed := make(chan error, 1)
	go func() { removed <- untrusted.RemoveAll(i.stateDir) }()
	err := i.sb.Stop()
	<-i.watched
	if rerr := <-removed; rerr != nil {
		if rerr = untrusted.RemoveAll(i.stateDir); rerr != nil && err == nil {
			err = fmt.Errorf("removing the state of sandbox %s: %w", i.id, rerr)
		}
	}
	i.release()
	return err
}

// HighestOnly returns layers (lowest first) without every layer that
// appears again higher up: overlayfs refuses a directory twice (ELOOP),
// and the higher copy decides every path the lower one holds, so the
// merged tree is the same. It serves layer directories and layer digests.
func HighestOnly[T comparable](layers []T) []T {
	seen := make(map[T]bool, len(layers))
	out := make([]T, 0, len(layers))
	for i := len(layers) - 1; i >= 0; i-- {
		if !seen[layers[i]] {
			seen[layers[i]] = true
			out = append(out, layers[i])
		}
	}
	slices.Reverse(out)
	return out
}
