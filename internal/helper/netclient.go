package helper

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// NetClient is the client of one network helper (cc-helper serve): its
// own connection for starting sandboxes, pulling and asking for capacity,
// redialed when it broke (a helper that comes back is used again), and the
// instances it started, each on connections of their own.
type NetClient struct {
	addr string
	tls  *tls.Config // nil: plaintext, a -insecure-loopback helper

	mu         sync.Mutex
	c          *ipc.Client               // guarded by mu; nil or dead: dial again
	dialing    chan struct{}             // guarded by mu: closed once the dial in progress ends; nil when none is
	cancelDial context.CancelFunc        // guarded by mu: ends the dial in progress
	instances  map[*NetInstance]struct{} // guarded by mu
	inFlight   int                       // guarded by mu: starts, uploads and builds under way
	closed     bool                      // guarded by mu

	ended      context.Context // done once Close is called: a stream of n's own ends then
	endStreams context.CancelFunc
}

// dialTimeout bounds a dial and TLS handshake to a network helper when the
// caller's context sets no deadline.
const dialTimeout = 10 * time.Second

// DialNet connects to the network helper at addr with tc (nil: plaintext,
// for a helper serving on loopback with -insecure-loopback). It returns a
// *ipc.TransportError when the helper cannot be reached or the TLS
// handshake fails, and an error matching ipc.ErrVersionMismatch for a
// helper of another protocol version.
func DialNet(ctx context.Context, addr string, tc *tls.Config) (*NetClient, error) {
	n := &NetClient{addr: addr, tls: tc, instances: map[*NetInstance]struct{}{}}
	n.ended, n.endStreams = context.WithCancel(context.Background())
	if _, err := n.client(ctx); err != nil {
		n.endStreams()
		return nil, err
	}
	return n, nil
}

// begin counts a start, upload or build under way, or refuses once n is
// closed; the returned func ends it.
func (n *NetClient) begin() (end func(), err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("helper %s: %w", n.addr, ipc.ErrAlreadyClosed)
	}
	n.inFlight++
	return sync.OnceFunc(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.inFlight--
	}), nil
}

// CloseIfIdle closes n and returns true when none of its sandboxes runs
// and nothing is being started, uploaded or built through it; otherwise
// it leaves n as it is and returns false. The check and the close are one
// step: nothing can start in between.
func (n *NetClient) CloseIfIdle() bool {
	n.mu.Lock()
	idle := !n.closed && len(n.instances) == 0 && n.inFlight == 0
	if idle {
		n.closed = true
	}
	n.mu.Unlock()
	if idle {
		n.Close()
	}
	return idle
}

// Addr returns the helper's address.
func (n *NetClient) Addr() string { return n.addr }

// dial opens one connection to the helper: TCP with keepalives, then the
// TLS handshake, both bounded by ctx or dialTimeout.
func (n *NetClient) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	d := net.Dialer{KeepAliveConfig: KeepAlive, Control: controlUserTimeout}
	conn, err := d.DialContext(ctx, "tcp", n.addr)
	if err != nil || n.tls == nil {
		return conn, err
	}
	tc := n.tls.Clone()
	if tc.MinVersion < tls.VersionTLS13 {
		tc.MinVersion = tls.VersionTLS13
	}
	c := tls.Client(conn, tc)
	if err := c.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", n.addr, err)
	}
	return c, nil
}

// bounded returns ctx, bounded by dialTimeout when it sets no deadline
// of its own: a helper that neither answers nor hangs up while a
// connection is made is taken for unreachable.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, dialTimeout)
}

// client returns the live client of the helper's own messages, dialing
// again when the last one broke. One dial is made at a time, outside the
// lock: callers meanwhile wait for it (or their ctx), and Close ends it.
func (n *NetClient) client(ctx context.Context) (*ipc.Client, error) {
	n.mu.Lock()
	for {
		if n.closed {
			n.mu.Unlock()
			return nil, fmt.Errorf("helper %s: %w", n.addr, ipc.ErrAlreadyClosed)
		}
		if n.c != nil && n.c.IsAlive() {
			c := n.c
			n.mu.Unlock()
			return c, nil
		}
		if n.dialing == nil {
			break
		}
		dialing := n.dialing
		n.mu.Unlock()
		select {
		case <-dialing:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		n.mu.Lock()
	}
	if n.c != nil {
		n.c.Close()
		n.c = nil
	}
	dctx, cancel := bounded(ctx)
	defer cancel()
	dialing := make(chan struct{})
	n.dialing, n.cancelDial = dialing, cancel
	n.mu.Unlock()

	c, err := ipc.Connect(dctx, n.dial)

	n.mu.Lock()
	defer n.mu.Unlock()
	n.dialing, n.cancelDial = nil, nil
	close(dialing)
	switch {
	case err != nil && n.closed:
		return nil, fmt.Errorf("helper %s: %w", n.addr, ipc.ErrAlreadyClosed)
	case err != nil:
		return nil, fmt.Errorf("helper %s: %w", n.addr, err)
	case n.closed:
		c.Close()
		return nil, fmt.Errorf("helper %s: %w", n.addr, ipc.ErrAlreadyClosed)
	}
	n.c = c
	return c, nil
}

// do makes one call of the helper's own messages.
func (n *NetClient) do(ctx context.Context, t uint16, req, ans ipc.Msg) error {
	c, err := n.client(ctx)
	if err != nil {
		return err
	}
	if err := c.Do(ctx, t, req, ans); err != nil {
		return n.callErr(err)
	}
	return nil
}

// callErr is the error of a failed call to the helper: the helper's own
// error without its op and path, or the transport's, naming the helper.
func (n *NetClient) callErr(err error) error {
	if ie, ok := errors.AsType[*ipc.IPCError](err); ok {
		return fmt.Errorf("helper %s: %w", n.addr, ie.Bare())
	}
	return fmt.Errorf("helper %s: %w", n.addr, err)
}

// Capacity asks the helper what this client may still start there.
func (n *NetClient) Capacity(ctx context.Context) (ipc.CapacityAns, error) {
	var a ipc.CapacityAns
	err := n.do(ctx, ipc.MsgRemoteCapacity, &ipc.Empty{}, &a)
	return a, err
}

// Pull asks the helper to pull an image into its store.
func (n *NetClient) Pull(ctx context.Context, req *ipc.PullReq) (ipc.PullAns, error) {
	var a ipc.PullAns
	err := n.do(ctx, ipc.MsgRemotePull, req, &a)
	return a, err
}

// Start starts a sandbox on the helper and connects to it. It returns the
// instance and its image's config blob, or the helper's error (a limit:
// matching fs.ErrPermission).
func (n *NetClient) Start(ctx context.Context, req *ipc.RemoteNewReq) (*NetInstance, []byte, error) {
	end, err := n.begin()
	if err != nil {
		return nil, nil, err
	}
	defer end()
	var a ipc.RemoteNewAns
	if err := n.do(ctx, ipc.MsgRemoteNew, req, &a); err != nil {
		return nil, nil, err
	}
	ni := &NetInstance{id: a.ID, nc: n, done: make(chan struct{})}
	cctx, cancel := bounded(ctx)
	agent, err := ipc.Connect(cctx, ni.dial)
	cancel()
	if err != nil {
		// No connection ever attached: the helper's grace period stops it.
		return nil, nil, fmt.Errorf("connecting to sandbox %s on %s: %w", a.ID, n.addr, err)
	}
	agent.SetStreamHook(ni.stream)
	ni.agent = agent
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		ni.waitStop = func() {} // no wait was started: Close stops the sandbox and closes the rest
		close(ni.done)
		ni.Close()
		return nil, nil, fmt.Errorf("helper %s: %w", n.addr, ipc.ErrAlreadyClosed)
	}
	n.instances[ni] = struct{}{}
	n.mu.Unlock()
	waitCtx, cancel := context.WithCancel(context.Background())
	ni.waitStop = cancel
	go ni.wait(waitCtx)
	return ni, a.Config, nil
}

// Running returns how many of the sandboxes started through n are not
// closed yet.
func (n *NetClient) Running() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.instances)
}

// forget drops a closed instance.
func (n *NetClient) forget(ni *NetInstance) {
	n.mu.Lock()
	delete(n.instances, ni)
	n.mu.Unlock()
}

// Close closes every instance started through n (stopping their
// sandboxes, where the helper can be reached), then the connection.
func (n *NetClient) Close() error {
	n.endStreams()
	n.mu.Lock()
	n.closed = true
	if n.cancelDial != nil {
		n.cancelDial()
	}
	all := make([]*NetInstance, 0, len(n.instances))
	for ni := range n.instances {
		all = append(all, ni)
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, ni := range all {
		wg.Go(func() { ni.Close() })
	}
	wg.Wait()
	n.mu.Lock()
	c := n.c
	n.c = nil
	n.mu.Unlock()
	if c != nil {
		c.Close()
	}
	return nil
}

// MissingLayers asks the helper which of the layers (diffIDs) its store
// lacks for this client. It returns the helper's error (a name that is no
// sha256 digest, too many layers) or the transport's.
func (n *NetClient) MissingLayers(ctx context.Context, diffIDs []string) ([]string, error) {
	var a ipc.LayersAns
	err := n.do(ctx, ipc.MsgRemoteLayers, &ipc.LayersReq{DiffIDs: diffIDs}, &a)
	return a.Missing, err
}

// PutLayer sends the helper a layer: write writes its plain tar, size
// bytes whose sha256 is diffID, which the helper checks as it unpacks
// them. It returns the helper's refusal (the status that ends the
// stream), write's error, or a *ipc.TransportError when the stream
// breaks; ctx's end breaks it.
func (n *NetClient) PutLayer(ctx context.Context, diffID string, size int64, write func(io.Writer) error) error {
	end, err := n.begin()
	if err != nil {
		return err
	}
	defer end()
	c, err := n.client(ctx)
	if err != nil {
		return err
	}
	_, conn, err := c.DoStream(ctx, ipc.MsgRemotePutLayer, &ipc.PutLayerReq{DiffID: diffID, Size: uint64(size)}, nil)
	if err != nil {
		return n.callErr(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer context.AfterFunc(n.ended, func() { conn.Close() })()
	w := &countingWriter{w: conn, limit: size}
	if err := write(w); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if w.err != nil {
			return n.callErr(&ipc.TransportError{Op: "write", Err: w.err})
		}
		return err
	}
	if w.n != size {
		return fmt.Errorf("layer %s: %d bytes written, %d announced", diffID, w.n, size)
	}
	if err := ipc.ReadStatus(conn); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("helper %s: %w", n.addr, err)
	}
	return nil
}

// countingWriter counts what it passes on, refusing more than limit
// bytes, and keeps the writer's error apart from the caller's.
type countingWriter struct {
	w     io.Writer
	n     int64
	limit int64
	err   error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.limit-c.n {
		return 0, fmt.Errorf("more than the %d bytes announced", c.limit)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// PutImage has the helper record an image by its config, whose layers it
// holds for this client (PutLayer). Its answer names the image by the
// config's digest. It returns the helper's error (one matching
// fs.ErrNotExist for a layer it lacks, a config it refuses) or the
// transport's.
func (n *NetClient) PutImage(ctx context.Context, config []byte) (ipc.PullAns, error) {
	var a ipc.PullAns
	err := n.do(ctx, ipc.MsgRemoteImage, &ipc.ImageReq{Config: config}, &a)
	return a, err
}

// Build has the helper build req (see MsgRemoteBuild), calling progress
// with each event as it comes, and returns the snapshot the build left in
// the helper's store. It returns the build's error (the helper's), or the
// transport's; ctx's end hangs up, which ends the build there.
func (n *NetClient) Build(ctx context.Context, req *ipc.BuildReq, progress func(ipc.BuildEvent)) (*snapshot.Info, error) {
	end, err := n.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	c, err := n.client(ctx)
	if err != nil {
		return nil, err
	}
	_, conn, err := c.DoStream(ctx, ipc.MsgRemoteBuild, req, nil)
	if err != nil {
		return nil, n.callErr(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer context.AfterFunc(n.ended, func() { conn.Close() })()
	for {
		var ev ipc.BuildEvent
		var ans ipc.SnapshotAns
		end, err := ipc.ReadBuildFrame(conn, &ev, &ans)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, n.callErr(err)
		}
		if !end {
			if progress != nil {
				progress(ev)
			}
			continue
		}
		var info snapshot.Info
		if err := json.Unmarshal(ans.Info, &info); err != nil {
			return nil, fmt.Errorf("helper %s: the build's snapshot: %w", n.addr, err)
		}
		return &info, nil
	}
}
