package helper

import (
	"fmt"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// ledger is the network helper's account of its instances: who owns each
// (the client certificate's common name), what each holds against its
// owner's limits, and how many connections serve each, so that a client
// that has vanished loses its sandboxes after the grace period.
type ledger struct {
	max    int           // the helper's capacity (-max-instances)
	policy Policy        // per-client limits
	grace  time.Duration // -client-grace

	mu       sync.Mutex
	byID     map[string]*netInstance // guarded by mu
	reserved map[string]int          // guarded by mu: starts in progress per client
	memRes   map[string]int64        // guarded by mu: their memory
	closing  sync.WaitGroup          // grace-timer closes in flight
}

// netInstance is one instance of the network helper.
type netInstance struct {
	id     string
	owner  string
	memMB  int64
	inst   *engine.Instance
	lease  *image.Lease // keeps its layers in the store; nil for scratch
	config []byte       // its image's config blob; nil for scratch
	// imageKey and layers are its image's, for its snapshots' parent.
	imageKey string
	layers   []v1.Hash

	// guarded by ledger.mu
	conns   int         // connections attached to it
	timer   *time.Timer // the grace timer while conns == 0
	removed bool

	closeOnce sync.Once
	closeErr  error

	relay relaySlot // the egress device's relay (MsgRemoteTap), one at a time
}

func newLedger(max int, policy Policy, grace time.Duration) *ledger {
	return &ledger{max: max, policy: policy, grace: grace,
		byID: map[string]*netInstance{}, reserved: map[string]int{}, memRes: map[string]int64{}}
}

// limits returns the limits of client: its own, or those of "*".
func (l *ledger) limits(client string) ClientLimits {
	if c, ok := l.policy.Clients[client]; ok {
		return c
	}
	return l.policy.Clients["*"]
}

// usageLocked returns the instances and memory client holds, starts in
// progress included, and the helper's instances overall.
func (l *ledger) usageLocked(client string) (n int, memMB int64, total int) {
	for _, ni := range l.byID {
		if ni.owner == client {
			n++
			memMB += ni.memMB
		}
	}
	for c, r := range l.reserved {
		total += r
		if c == client {
			n += r
			memMB += l.memRes[c]
		}
	}
	return n, memMB, total + len(l.byID)
}

// reserve books one instance of memMB for client, or returns an error
// matching fs.ErrPermission that names the limit in the way. The caller
// calls the returned function once the instance is in the ledger or has
// failed to start.
func (l *ledger) reserve(client string, memMB int64) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limits(client)
	n, mem, total := l.usageLocked(client)
	switch {
	case total >= l.max:
		return nil, limitError("this helper runs %d sandboxes, its -max-instances", total)
	case lim.MaxInstances > 0 && n >= lim.MaxInstances:
		return nil, limitError("client %q has %d sandboxes here, its limit (maxInstances)", client, n)
	case lim.MaxMemoryMB > 0 && memMB == 0:
		return nil, limitError("client %q is limited to %d MB here (maxMemoryMB): give the sandbox a memory limit (WithMemoryMB)", client, lim.MaxMemoryMB)
	case lim.MaxMemoryMB > 0 && mem+memMB > lim.MaxMemoryMB:
		return nil, limitError("client %q would use %d MB here, over its limit of %d MB (maxMemoryMB)", client, mem+memMB, lim.MaxMemoryMB)
	}
	l.reserved[client]++
	l.memRes[client] += memMB
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.reserved[client]--
		l.memRes[client] -= memMB
		if l.reserved[client] == 0 {
			delete(l.reserved, client)
			delete(l.memRes, client)
		}
	}, nil
}

func limitError(format string, args ...any) error {
	return &ipc.IPCError{Code: ipc.ErrCodePermission, Message: fmt.Sprintf(format, args...)}
}

// add records a started instance; with no connection attached yet, its
// grace period starts now.
func (l *ledger) add(ni *netInstance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byID[ni.id] = ni
	l.startGraceLocked(ni)
}

// get returns client's instance id. Another client's instance is as
// unknown as one that does not exist.
func (l *ledger) get(client, id string) (*netInstance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ni, ok := l.byID[id]
	if !ok || ni.owner != client {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidHandle, Message: fmt.Sprintf("no sandbox %q of client %q on this helper", id, client)}
	}
	return ni, nil
}

// attach counts one more connection serving ni, ending its grace period.
func (l *ledger) attach(ni *netInstance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ni.conns++
	if ni.timer != nil {
		if ni.timer.Stop() {
			l.closing.Done() // the timer's function will not run
		}
		ni.timer = nil
	}
}

// detach counts one connection fewer; at none, the grace period starts.
func (l *ledger) detach(ni *netInstance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ni.conns--
	if ni.conns == 0 {
		l.startGraceLocked(ni)
	}
}

func (l *ledger) startGraceLocked(ni *netInstance) {
	if ni.removed || ni.timer != nil {
		return
	}
	l.closing.Add(1)
	ni.timer = time.AfterFunc(l.grace, func() {
		defer l.closing.Done()
		l.mu.Lock()
		expired := ni.timer != nil && ni.conns == 0 && !ni.removed
		l.mu.Unlock()
		if expired {
			l.close(ni)
		}
	})
}

// close stops ni, releases its layers and forgets it; later calls return
// the first one's result.
func (l *ledger) close(ni *netInstance) error {
	ni.closeOnce.Do(func() {
		l.mu.Lock()
		ni.removed = true
		if ni.timer != nil && ni.timer.Stop() {
			l.closing.Done() // the timer's function will not run
		}
		ni.timer = nil
		delete(l.byID, ni.id)
		l.mu.Unlock()
		ni.closeErr = ni.inst.Close()
		if ni.lease != nil {
			ni.lease.Release()
		}
	})
	return ni.closeErr
}

// closeAll stops every instance (the helper is shutting down) and waits
// for grace-timer closes in flight.
func (l *ledger) closeAll() {
	l.mu.Lock()
	all := make([]*netInstance, 0, len(l.byID))
	for _, ni := range l.byID {
		all = append(all, ni)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, ni := range all {
		wg.Go(func() { l.close(ni) })
	}
	wg.Wait()
	l.closing.Wait()
}

// capacity answers MsgRemoteCapacity for client.
func (l *ledger) capacity(client string) ipc.CapacityAns {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limits(client)
	n, mem, total := l.usageLocked(client)
	free := max(l.max-total, 0)
	if lim.MaxInstances > 0 {
		free = min(free, max(lim.MaxInstances-n, 0))
	}
	memFree := int64(-1)
	if lim.MaxMemoryMB > 0 {
		memFree = max(lim.MaxMemoryMB-mem, 0)
	}
	return ipc.CapacityAns{MaxInstances: uint32(l.max), Running: uint32(total), Free: uint32(free), MemoryFreeMB: memFree}
}
