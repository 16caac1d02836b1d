package sandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/netutil"
)

// The network API of an Instance. A sandbox has a network of its own (only
// the loopback interface unless egress is enabled): Listen puts a listening
// socket there, which processes in the sandbox connect to and the host
// program accepts from; Dial connects from there, reaching servers that run
// in the sandbox. Where the connection to the sandbox carries descriptors
// (the namespace backend), the returned listeners and connections are the
// sandbox's own kernel sockets, used natively (*net.TCPListener,
// *net.TCPConn, ...); otherwise they are streams to sockets the agent holds.
// Errors are *net.OpError.

// Listen listens on addr inside the sandbox. Networks: "tcp", "tcp4",
// "tcp6", and "unix" or "unixpacket", whose address is a path inside the
// sandbox. Close of the Instance closes the listener.
func (i *Instance) Listen(network, addr string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix", "unixpacket":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Addr: parseAddr(network, addr), Err: err}
	}
	if err := i.alive(); err != nil {
		return nil, opErr(err)
	}
	var e ipc.Encoder
	e.String(network)
	e.String(addr)
	e.Bool(i.fdOK)
	resp, err := i.client.Exchange(context.Background(), ipc.Message{Type: ipc.MsgNetListen, Payload: e.Bytes()})
	if err != nil {
		return nil, opErr(i.remoteErr(err))
	}
	dec := ipc.NewDecoder(resp.Payload[1:])
	h, _ := dec.Uint64()
	local, err := dec.String()
	if err != nil {
		closeFiles(resp.Files)
		return nil, opErr(err)
	}
	if len(resp.Files) == 1 {
		ln, err := net.FileListener(resp.Files[0])
		resp.Files[0].Close()
		if err != nil {
			return nil, opErr(err)
		}
		i.track(ln)
		return ln, nil
	}
	closeFiles(resp.Files)
	ln := &streamListener{inst: i, network: network, handle: h, addr: parseAddr(network, local)}
	ln.ctx, ln.cancel = context.WithCancel(context.Background())
	i.track(ln)
	return ln, nil
}

// Dial connects to addr from inside the sandbox. Networks: "tcp", "tcp4",
// "tcp6", "udp", "udp4", "udp6", "unix", "unixpacket".
func (i *Instance) Dial(network, addr string) (net.Conn, error) {
	return i.DialContext(context.Background(), network, addr)
}

// DialContext is Dial with a context; its deadline bounds the connect.
func (i *Instance) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "unixpacket":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: parseAddr(network, addr), Err: err}
	}
	if err := i.alive(); err != nil {
		return nil, opErr(err)
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, opErr(os.ErrDeadlineExceeded)
		}
	}
	var e ipc.Encoder
	e.String(network)
	e.String(addr)
	e.Int64(int64(timeout))
	e.Bool(i.fdOK)
	req := ipc.Message{Type: ipc.MsgNetDial, Payload: e.Bytes()}
	if i.fdOK {
		resp, err := i.client.Exchange(ctx, req)
		if err != nil {
			return nil, opErr(dialErr(ctx, i.remoteErr(err)))
		}
		if len(resp.Files) != 1 {
			closeFiles(resp.Files)
			return nil, opErr(errors.New("the agent sent no socket"))
		}
		c, err := net.FileConn(resp.Files[0])
		resp.Files[0].Close()
		if err != nil {
			return nil, opErr(err)
		}
		return c, nil
	}
	resp, conn, err := i.client.Hijack(ctx, req)
	if err != nil {
		return nil, opErr(dialErr(ctx, i.remoteErr(err)))
	}
	return newStreamConn(conn, network, resp.Payload[1:]), nil
}

// dialErr prefers the context's error when it ended the dial.
func dialErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ipc.ErrTransport)) {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return os.ErrDeadlineExceeded
		}
		return cerr
	}
	return err
}

// ListenPacket listens for datagrams on addr inside the sandbox: "udp",
// "udp4", "udp6", or "unixgram" with a path inside the sandbox. Close of
// the Instance closes it.
func (i *Instance) ListenPacket(network, addr string) (net.PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6", "unixgram":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Addr: parseAddr(network, addr), Err: err}
	}
	if err := i.alive(); err != nil {
		return nil, opErr(err)
	}
	var e ipc.Encoder
	e.String(network)
	e.String(addr)
	e.Bool(i.fdOK)
	req := ipc.Message{Type: ipc.MsgNetListenPacket, Payload: e.Bytes()}
	if i.fdOK {
		resp, err := i.client.Exchange(context.Background(), req)
		if err != nil {
			return nil, opErr(i.remoteErr(err))
		}
		if len(resp.Files) != 1 {
			closeFiles(resp.Files)
			return nil, opErr(errors.New("the agent sent no socket"))
		}
		pc, err := net.FilePacketConn(resp.Files[0])
		resp.Files[0].Close()
		if err != nil {
			return nil, opErr(err)
		}
		i.track(pc)
		return pc, nil
	}
	resp, conn, err := i.client.Hijack(context.Background(), req)
	if err != nil {
		return nil, opErr(i.remoteErr(err))
	}
	local, _ := ipc.NewDecoder(resp.Payload[1:]).String()
	pc := &streamPacketConn{Conn: conn, network: network, laddr: parseAddr(network, local)}
	i.track(pc)
	return pc, nil
}

// track remembers a listener or packet socket for Close: nothing can reach
// it once the sandbox is gone, so it must not block its user forever.
func (i *Instance) track(c io.Closer) {
	i.netMu.Lock()
	defer i.netMu.Unlock()
	if i.netClosed {
		c.Close()
		return
	}
	i.sockets = append(i.sockets, c)
}

// closeSockets closes what track remembered.
func (i *Instance) closeSockets() {
	i.netMu.Lock()
	socks := i.sockets
	i.sockets, i.netClosed = nil, true
	i.netMu.Unlock()
	for _, c := range socks {
		c.Close()
	}
}

// parseAddr turns an address string of network into a net.Addr.
func parseAddr(network, addr string) net.Addr {
	switch {
	case strings.HasPrefix(network, "tcp"):
		if a, err := net.ResolveTCPAddr(network, addr); err == nil {
			return a
		}
	case strings.HasPrefix(network, "udp"):
		if a, err := net.ResolveUDPAddr(network, addr); err == nil {
			return a
		}
	case strings.HasPrefix(network, "unix"):
		return &net.UnixAddr{Name: addr, Net: network}
	}
	return stringAddr{network, addr}
}

// stringAddr is a net.Addr that could not be parsed.
type stringAddr struct{ net, addr string }

func (a stringAddr) Network() string { return a.net }
func (a stringAddr) String() string  { return a.addr }

// streamListener is a listener the agent holds (the streamed path); each
// Accept takes over a connection to the agent as the accepted stream.
type streamListener struct {
	inst    *Instance
	network string
	handle  uint64
	addr    net.Addr

	ctx    context.Context // cancelled by Close: ends pending Accepts
	cancel context.CancelFunc
	once   sync.Once
}

func (l *streamListener) Addr() net.Addr { return l.addr }

func (l *streamListener) Accept() (net.Conn, error) {
	opErr := func(err error) error { return &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: err} }
	if l.ctx.Err() != nil {
		return nil, opErr(net.ErrClosed)
	}
	var e ipc.Encoder
	e.Uint64(l.handle)
	resp, conn, err := l.inst.client.Hijack(l.ctx, ipc.Message{Type: ipc.MsgListenerAccept, Payload: e.Bytes()})
	if err != nil {
		if l.ctx.Err() != nil {
			return nil, opErr(net.ErrClosed)
		}
		return nil, opErr(l.inst.remoteErr(err))
	}
	return newStreamConn(conn, l.network, resp.Payload[1:]), nil
}

func (l *streamListener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		l.cancel()
		var e ipc.Encoder
		e.Uint64(l.handle)
		_, err = l.inst.client.Call(ipc.MsgListenerClose, e.Bytes())
		if err != nil && l.inst.stoppedErr(err) != nil {
			err = nil // the sandbox, and the listener with it, is gone
		}
	})
	if err != nil {
		return &net.OpError{Op: "close", Net: l.network, Addr: l.addr, Err: err}
	}
	return nil
}

// streamConn is a connection in the sandbox reached through a stream to
// the agent: it reports the sandbox-side addresses.
type streamConn struct {
	net.Conn
	laddr, raddr net.Addr
}

// newStreamConn wraps a hijacked stream; payload holds the local and remote
// addresses.
func newStreamConn(conn net.Conn, network string, payload []byte) *streamConn {
	dec := ipc.NewDecoder(payload)
	local, _ := dec.String()
	remote, _ := dec.String()
	return &streamConn{Conn: conn, laddr: parseAddr(network, local), raddr: parseAddr(network, remote)}
}

func (c *streamConn) LocalAddr() net.Addr  { return c.laddr }
func (c *streamConn) RemoteAddr() net.Addr { return c.raddr }

// CloseWrite half-closes the connection: the peer in the sandbox reads end
// of file.
func (c *streamConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// streamPacketConn is a packet socket in the sandbox reached through a
// stream of framed datagrams.
type streamPacketConn struct {
	net.Conn
	network string
	laddr   net.Addr
	rmu     sync.Mutex // one reader at a time: frames must not interleave
	wmu     sync.Mutex // likewise for writers
}

func (c *streamPacketConn) LocalAddr() net.Addr { return c.laddr }

func (c *streamPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	addr, payload, err := ipc.ReadPacketFrame(c.Conn)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = net.ErrClosed
		}
		return 0, nil, &net.OpError{Op: "read", Net: c.network, Addr: c.laddr, Err: err}
	}
	return copy(b, payload), parseAddr(c.network, addr), nil
}

func (c *streamPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if addr == nil {
		return 0, &net.OpError{Op: "write", Net: c.network, Addr: c.laddr, Err: errors.New("missing address")}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ipc.WritePacketFrame(c.Conn, addr.String(), b); err != nil {
		return 0, &net.OpError{Op: "write", Net: c.network, Addr: addr, Err: err}
	}
	return len(b), nil
}

// Expose forwards every connection accepted on hostListener (a host
// listener) to sandboxAddr inside the sandbox, both ways. It takes
// ownership of hostListener. Close of the returned Closer stops
// forwarding, closes the listener and every live connection, and waits.
func (i *Instance) Expose(network, sandboxAddr string, hostListener net.Listener) (io.Closer, error) {
	if hostListener == nil {
		return nil, errors.New("Expose: nil listener")
	}
	f := newForwarder(hostListener, func(ctx context.Context) (net.Conn, error) {
		return i.DialContext(ctx, network, sandboxAddr)
	})
	return f, nil
}

// Forward sends every connection accepted on sandboxListener (from
// Listen) to hostAddr, dialed on the host with network, both ways. It
// takes ownership of sandboxListener. Close stops forwarding, closes the
// listener and every live connection, and waits.
func (i *Instance) Forward(sandboxListener net.Listener, network, hostAddr string) (io.Closer, error) {
	if sandboxListener == nil {
		return nil, errors.New("Forward: nil listener")
	}
	f := newForwarder(sandboxListener, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, hostAddr)
	})
	return f, nil
}

// forwarder accepts on one side and dials the other for each connection.
type forwarder struct {
	ln     net.Listener
	dial   func(context.Context) (net.Conn, error)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
}

func newForwarder(ln net.Listener, dial func(context.Context) (net.Conn, error)) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{ln: ln, dial: dial, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.acceptLoop()
	return f
}

func (f *forwarder) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && f.ctx.Err() == nil {
				continue
			}
			return
		}
		f.wg.Add(1)
		go f.serve(c)
	}
}

// serve joins one accepted connection to a dialed one.
func (f *forwarder) serve(a net.Conn) {
	defer f.wg.Done()
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
	f.cancel()
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
