package sandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// The streamed path's sockets: where descriptors do not pass, the agent
// holds the sandbox's sockets, and each listener, connection or packet
// socket is reached through streams to it.

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

// Accept waits for a connection. Once the listener is closed it returns
// net.ErrClosed, or, when the sandbox's end closed it (a timeout), why the
// sandbox ended, as every other call then does.
func (l *streamListener) Accept() (net.Conn, error) {
	opErr := func(err error) error { return &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: err} }
	closed := func() error {
		if err := l.inst.runner.Err(); err != nil {
			return opErr(err)
		}
		return opErr(net.ErrClosed)
	}
	if l.ctx.Err() != nil {
		return nil, closed()
	}
	ans, conn, err := l.inst.agent.ListenerAccept(l.ctx, l.handle)
	if err != nil {
		if l.ctx.Err() != nil || l.inst.runner.Err() != nil {
			return nil, closed()
		}
		return nil, opErr(acceptFailed{l.inst.remoteErr(err)})
	}
	return newStreamConn(conn, l.network, ans), nil
}

// acceptFailed is the error of an Accept that failed while its listener
// is open and its sandbox runs (a network helper's limit on streams, which
// the sandbox's code can reach by connecting): temporary, as EMFILE is on
// a host listener, so that servers (net/http's) wait and accept again.
type acceptFailed struct{ error }

func (e acceptFailed) Unwrap() error   { return e.error }
func (e acceptFailed) Temporary() bool { return true }
func (e acceptFailed) Timeout() bool   { return false }

func (l *streamListener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		l.cancel()
		err = l.inst.agent.ListenerClose(context.Background(), l.handle)
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

// newStreamConn wraps a hijacked stream with the addresses of its
// connection in the sandbox.
func newStreamConn(conn net.Conn, network string, addrs ipc.ConnAns) *streamConn {
	return &streamConn{Conn: conn, laddr: parseAddr(network, addrs.Local), raddr: parseAddr(network, addrs.Remote)}
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
