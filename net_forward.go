package sandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/netutil"
)

// Expose forwards every connection accepted on hostListener (a host
// listener) to sandboxAddr inside the sandbox, both ways. It takes
// ownership of hostListener. Close of the returned Closer stops
// forwarding, closes the listener and every live connection, and waits.
func (i *Instance) Expose(network, sandboxAddr string, hostListener net.Listener) (io.Closer, error) {
	if hostListener == nil {
		return nil, errors.New("Expose: nil listener")
	}
	f := newForwarder(hostListener, i.Done(), func(ctx context.Context) (net.Conn, error) {
		return i.DialContext(ctx, network, sandboxAddr)
	})
	f.start()
	return f, nil
}

// Forward sends every connection accepted on sandboxListener (from
// Listen) to hostAddr, dialed on the host with network, both ways. It
// takes ownership of sandboxListener. The sandbox's Forwards hold at most
// maxForwardConns (64) connections at once, whatever its own limits:
// code in the sandbox decides how many it opens, and each holds host
// descriptors and goroutines until both ends close; the rest wait in the
// sandbox listener's queue until one ends. Close stops forwarding, closes
// the listener and every live connection, and waits; the sandbox's end
// does the same.
func (i *Instance) Forward(sandboxListener net.Listener, network, hostAddr string) (io.Closer, error) {
	if sandboxListener == nil {
		return nil, errors.New("Forward: nil listener")
	}
	f := newForwarder(sandboxListener, i.Done(), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, hostAddr)
	})
	f.slots = i.forwardSlots
	f.start()
	return f, nil
}

// maxForwardConns bounds the connections an Instance's Forwards hold at
// once.
const maxForwardConns = 64

// forwarder accepts on one side and dials the other for each connection.
type forwarder struct {
	ln     net.Listener
	ended  <-chan struct{} // the sandbox's end
	dial   func(context.Context) (net.Conn, error)
	slots  chan struct{} // one token a connection held; nil: no bound
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
}

// newForwarder makes a forwarder; start starts it.
func newForwarder(ln net.Listener, ended <-chan struct{}, dial func(context.Context) (net.Conn, error)) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	return &forwarder{ln: ln, ended: ended, dial: dial, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
}

// start accepts and forwards until Close or the sandbox's end, which
// shuts the forwarder as Close does.
func (f *forwarder) start() {
	f.wg.Add(2)
	go f.acceptLoop()
	go func() {
		defer f.wg.Done()
		select {
		case <-f.ended:
			f.shut()
		case <-f.ctx.Done():
		}
	}()
}

// acceptLoop accepts until the forwarder or its listener is closed, or
// its sandbox ends, holding one of slots (when there are) for each
// connection. Any other error passes: a limit met (the host's
// descriptors, a network helper's streams, which the sandbox's code can
// use up by connecting) is waited out, as net/http's server does, from
// 5 ms doubling to a second.
func (f *forwarder) acceptLoop() {
	defer f.wg.Done()
	var pause time.Duration
	for {
		if f.slots != nil {
			select {
			case f.slots <- struct{}{}:
			case <-f.ctx.Done():
				return
			}
		}
		c, err := f.ln.Accept()
		if err != nil {
			f.release()
			if f.ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, ErrNotRunning) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			select {
			case <-f.ctx.Done():
				return
			case <-f.ended:
				return
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		f.wg.Add(1)
		go f.serve(c)
	}
}

// release gives back the slot of a connection that has ended.
func (f *forwarder) release() {
	if f.slots != nil {
		<-f.slots
	}
}

// serve joins one accepted connection to a dialed one.
func (f *forwarder) serve(a net.Conn) {
	defer f.wg.Done()
	defer f.release()
	if !f.add(a) {
		a.Close()
		return
	}
	defer f.remove(a)
	b, err := f.dial(f.ctx)
	if err != nil {
		a.Close()
		return
	}
	if !f.add(b) {
		a.Close()
		b.Close()
		return
	}
	defer f.remove(b)
	netutil.Splice(a, b)
}

func (f *forwarder) add(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) remove(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// Close stops forwarding and waits until every connection is closed.
func (f *forwarder) Close() error {
	err := f.shut()
	f.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// shut stops forwarding: it closes the listener and every live
// connection, and returns the listener's Close error.
func (f *forwarder) shut() error {
	f.cancel()
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	return err
}
