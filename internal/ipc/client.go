package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DialFunc opens a new connection to a server (extension). A [Client] calls
// it for its control connection and whenever its pool needs one more.
type DialFunc func(ctx context.Context) (net.Conn, error)

// maxIdleConns bounds the idle connections a client keeps for reuse.
const maxIdleConns = 32

// Client manages connections to a server: a cc-helper process, or the agent
// inside a sandbox. It is safe for concurrent use; each call runs on a
// connection of its own, so a call blocked in its handler delays no other.
type Client struct {
	dial  DialFunc
	info  string    // the server's self-description from the handshake
	owner io.Closer // closed by Close after the connections: what else the client owns (a spawned helper, spawn.go); nil: nothing

	control net.Conn        // the control connection, watched for hang-up; nil with ConnectWatched
	gone    <-chan struct{} // ConnectWatched's: closed once the server is gone
	unix    bool            // the connections are Unix sockets
	deadCh  chan struct{}   // closed once the peer is known gone
	wg      sync.WaitGroup

	onStream atomic.Pointer[func(net.Conn)] // see SetStreamHook

	mu     sync.Mutex
	idle   []*msgConn            // guarded by mu
	busy   map[*msgConn]struct{} // guarded by mu
	closed bool                  // guarded by mu
	dead   error                 // guarded by mu: why the peer is gone
}

// ConnectTo connects to an existing cc-helper process at the given socket path.
func ConnectTo(socketPath string) (*Client, error) {
	return Connect(context.Background(), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socketPath)
	})
}

// Connect opens a client on connections made by dial (extension): it dials
// the control connection and performs the [MsgHello] handshake. It fails
// with an error matching [ErrVersionMismatch] when the server speaks another
// protocol version, and with a [*TransportError] when it cannot be reached.
func Connect(ctx context.Context, dial DialFunc) (*Client, error) {
	c := &Client{dial: dial, deadCh: make(chan struct{}), busy: make(map[*msgConn]struct{})}
	conn, err := dial(ctx)
	if err != nil {
		return nil, &TransportError{Op: "dial", Err: err}
	}
	if err := c.handshake(ctx, conn); err != nil {
		return nil, err
	}
	return c, nil
}

// ConnectWatched is [Connect] for a server whose end the caller learns of
// another way (extension): gone closes once the server is gone. The client
// keeps no control connection: the handshake's connection is closed after
// it, each call takes a connection from the pool or dials one, and an idle
// client holds no descriptor. The server must not take the close of the
// handshake's connection for the client's end.
func ConnectWatched(ctx context.Context, dial DialFunc, gone <-chan struct{}) (*Client, error) {
	c := &Client{dial: dial, gone: gone, deadCh: make(chan struct{}), busy: make(map[*msgConn]struct{})}
	conn, err := dial(ctx)
	if err != nil {
		return nil, &TransportError{Op: "dial", Err: err}
	}
	if err := c.handshake(ctx, conn); err != nil {
		return nil, err
	}
	return c, nil
}

// handshake says hello on conn, which becomes the control connection, and
// starts watching it (or, with gone, is closed and gone is watched). On
// failure conn is closed.
func (c *Client) handshake(ctx context.Context, conn net.Conn) error {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	}
	mc := newMsgConn(conn)
	var enc Encoder
	(&HelloReq{Magic: HelloMagic, Version: ProtocolVersion}).Encode(&enc)
	resp, err := c.roundTrip(mc, Message{Type: MsgHello, Payload: enc.Bytes()}, nil)
	if err == nil {
		err = c.readHello(resp)
	}
	if stop != nil && !stop() {
		err = fmt.Errorf("ipc handshake: %w", ctx.Err()) // the deadline it set ended the call
	}
	if err != nil {
		conn.Close()
		return err
	}
	conn.SetDeadline(time.Time{})
	_, c.unix = conn.(*net.UnixConn)
	c.wg.Add(1)
	if c.gone != nil {
		conn.Close()
		go c.watchGone()
		return nil
	}
	c.control = conn
	go c.watchControl(mc)
	return nil
}

// readHello checks the server's answer to the handshake.
func (c *Client) readHello(resp Message) error {
	payload, err := checkResponse(resp)
	if err != nil {
		return fmt.Errorf("ipc handshake: %w", err)
	}
	if len(payload) == 0 {
		return &TransportError{Op: "handshake", Err: errors.New("empty answer")}
	}
	var hello HelloAns
	if err := hello.Decode(NewDecoder(payload[1:])); err != nil {
		return &TransportError{Op: "handshake", Err: err}
	}
	if hello.Version != ProtocolVersion {
		return fmt.Errorf("ipc handshake: server speaks protocol version %d, this client %d: %w", hello.Version, ProtocolVersion, ErrVersionMismatch)
	}
	c.info = hello.Info
	return nil
}

// watchControl waits for the control connection to end, which means the peer
// is gone (or this client closed it).
func (c *Client) watchControl(mc *msgConn) {
	defer c.wg.Done()
	var b [64]byte
	for {
		if _, err := mc.c.Read(b[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("server closed the connection")
			}
			c.markDead(err)
			return
		}
	}
}

// watchGone waits for ConnectWatched's gone, or for Close.
func (c *Client) watchGone() {
	defer c.wg.Done()
	select {
	case <-c.gone:
		c.markDead(errors.New("server is gone"))
	case <-c.deadCh:
	}
}

// markDead records that the peer is gone and fails every connection, so that
// calls in flight return at once.
func (c *Client) markDead(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return
	}
	if c.closed {
		cause = ErrAlreadyClosed
	}
	c.dead = cause
	close(c.deadCh)
	for _, mc := range c.idle {
		mc.c.Close()
	}
	c.idle = nil
	for mc := range c.busy {
		mc.c.Close()
	}
}

// CanPassDescriptors reports whether this client's connections carry
// descriptors (extension): true for Unix sockets where the platform allows.
func (c *Client) CanPassDescriptors() bool {
	return c.unix && canPassDescriptors
}

// Info returns the server's description of itself from the handshake
// (extension).
func (c *Client) Info() string { return c.info }

// Done returns a channel closed once the peer is gone or the client is
// closed (extension).
func (c *Client) Done() <-chan struct{} { return c.deadCh }

// Err returns why the peer is unusable: nil while it is alive, otherwise a
// [*TransportError] (or an error matching [ErrAlreadyClosed] after Close).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errLocked()
}

func (c *Client) errLocked() error {
	switch {
	case c.closed:
		return fmt.Errorf("ipc client: %w", ErrAlreadyClosed)
	case c.dead != nil:
		return &TransportError{Op: "call", Err: fmt.Errorf("peer is gone: %w", c.dead)}
	}
	return nil
}

// get returns a connection for one call: an idle one, or a new one.
func (c *Client) get(ctx context.Context) (*msgConn, error) {
	c.mu.Lock()
	if err := c.errLocked(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if n := len(c.idle); n > 0 {
		mc := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.busy[mc] = struct{}{}
		c.mu.Unlock()
		return mc, nil
	}
	c.mu.Unlock()

	conn, err := c.dialUnlessClosed(ctx)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if derr := c.Err(); derr != nil {
			return nil, derr
		}
		return nil, &TransportError{Op: "dial", Err: err}
	}
	mc := newMsgConn(conn)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.errLocked(); err != nil {
		conn.Close()
		return nil, err
	}
	c.busy[mc] = struct{}{}
	return mc, nil
}

// SetStreamHook makes the client call f with each connection a call's
// answer turns into a stream, before the caller gets it (extension): a
// transport can set such connections apart from those that carry
// messages.
func (c *Client) SetStreamHook(f func(net.Conn)) { c.onStream.Store(&f) }

// CloseOnEnd closes conn, a stream a call took over, should the client
// be closed or its peer go before stop is called (extension): a stream
// whose call has no context of its own ends then too, whatever the peer
// does.
func (c *Client) CloseOnEnd(conn io.Closer) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-c.deadCh:
			conn.Close()
		case <-done:
		}
	}()
	return func() { close(done) }
}

// dialUnlessClosed dials a connection for a call, giving up with ctx or
// when the client is closed or its peer gone, whichever comes first: a
// dial is not among the busy connections Close closes.
func (c *Client) dialUnlessClosed(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.deadCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	return c.dial(ctx)
}

// put returns a healthy connection to the pool.
func (c *Client) put(mc *msgConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.busy, mc)
	if c.closed || c.dead != nil || len(c.idle) >= maxIdleConns {
		mc.c.Close()
		return
	}
	c.idle = append(c.idle, mc)
}

// discard closes a connection whose state is unknown.
func (c *Client) discard(mc *msgConn) {
	c.mu.Lock()
	delete(c.busy, mc)
	c.mu.Unlock()
	mc.c.Close()
}

// release removes a hijacked connection from the client's care.
func (c *Client) release(mc *msgConn) {
	c.mu.Lock()
	delete(c.busy, mc)
	c.mu.Unlock()
}

// roundTrip writes req on mc and reads the answer, after await when it is
// not nil.
func (c *Client) roundTrip(mc *msgConn, req Message, await func(*msgConn)) (Message, error) {
	if err := mc.writeMsg(req); err != nil {
		if errors.Is(err, ErrNoDescriptorPassing) || errors.Is(err, ErrMessageTooLarge) {
			return Message{}, err
		}
		return Message{}, &TransportError{Op: "write", Err: err}
	}
	if await != nil {
		await(mc)
	}
	resp, err := mc.readMsg()
	if err != nil {
		return Message{}, &TransportError{Op: "read", Err: err}
	}
	return resp, nil
}

// exchange performs one call. With hijack, a successful call's connection is
// handed to the caller instead of going back to the pool.
func (c *Client) exchange(ctx context.Context, req Message, hijack bool) (Message, net.Conn, error) {
	return c.exchangeIf(ctx, req, func(Message) bool { return hijack }, nil)
}

// exchangeIf is exchange where hijack decides, from a successful answer,
// whether its connection goes to the caller. A non-nil await is called
// between writing the request and reading the answer.
func (c *Client) exchangeIf(ctx context.Context, req Message, hijack func(Message) bool, await func(*msgConn)) (Message, net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, nil, err
	}
	mc, err := c.get(ctx)
	if err != nil {
		return Message{}, nil, err
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { mc.c.SetDeadline(aLongTimeAgo) })
	}
	resp, err := c.roundTrip(mc, req, await)
	if stop != nil && !stop() {
		// The context ended the call: the connection's state is unknown,
		// and closing it tells the server to cancel the handler.
		c.discard(mc)
		closeFiles(resp.Files)
		return Message{}, nil, ctx.Err()
	}
	if err != nil {
		c.discard(mc)
		if derr := c.Err(); derr != nil && errors.Is(err, ErrTransport) {
			return Message{}, nil, derr
		}
		return Message{}, nil, err
	}
	if resp.Type == MsgResponse || resp.Type == MsgError {
		if _, cerr := checkResponse(resp); cerr == nil && hijack(resp) {
			c.release(mc)
			conn := mc.hijack()
			if f := c.onStream.Load(); f != nil {
				(*f)(conn)
			}
			return resp, conn, nil
		}
		c.put(mc)
		return resp, nil, nil
	}
	c.discard(mc)
	closeFiles(resp.Files)
	return Message{}, nil, &TransportError{Op: "read", Err: fmt.Errorf("unexpected message type 0x%04x in answer", resp.Type)}
}

// checkResponse returns the payload of a successful answer, or the error a
// failed one carries. A MsgResponse whose first byte is a nonzero code is a
// failure too.
func checkResponse(m Message) ([]byte, error) {
	switch m.Type {
	case MsgError:
		ie, err := DecodeError(NewDecoder(m.Payload))
		if err != nil {
			return nil, &TransportError{Op: "read", Err: fmt.Errorf("malformed error answer: %w", err)}
		}
		if ie == nil {
			return nil, &TransportError{Op: "read", Err: errors.New("error answer with code 0")}
		}
		return nil, ie
	case MsgResponse:
		if len(m.Payload) > 0 && m.Payload[0] != ErrCodeOK {
			ie, err := DecodeError(NewDecoder(m.Payload))
			if err != nil {
				return nil, &TransportError{Op: "read", Err: fmt.Errorf("malformed error answer: %w", err)}
			}
			return nil, ie
		}
		return m.Payload, nil
	}
	return nil, &TransportError{Op: "read", Err: fmt.Errorf("unexpected message type 0x%04x", m.Type)}
}

// Call sends a request and waits for a response. It is safe for concurrent
// use. It returns the response payload, which starts with the code
// [ErrCodeOK]; an *IPCError when the server reported a failure; or a
// [*TransportError] when the connection failed.
func (c *Client) Call(msgType uint16, payload []byte) ([]byte, error) {
	return c.CallContext(context.Background(), msgType, payload)
}

// CallContext is Call with a context (extension). When ctx ends first, the
// call returns ctx.Err() and its connection is closed, which cancels the
// context of the handler on the server (see [Request.Context]).
func (c *Client) CallContext(ctx context.Context, msgType uint16, payload []byte) ([]byte, error) {
	resp, _, err := c.exchange(ctx, Message{Type: msgType, Payload: payload}, false)
	if err != nil {
		return nil, err
	}
	closeFiles(resp.Files)
	return checkResponse(resp)
}

// Exchange sends req with its files and returns the whole answer, files
// included (extension). The caller keeps ownership of req.Files and takes
// ownership of the answer's Files, also when the answer is an error. Errors
// are those of [Client.CallContext]; ErrNoDescriptorPassing when req has
// files and the connection cannot carry them.
func (c *Client) Exchange(ctx context.Context, req Message) (Message, error) {
	return c.exchangeChecked(ctx, req, nil)
}

// ExchangeWaiting is Exchange, without a context, for a call whose answer
// comes only after a long wait in its handler, such as a command's exit
// (extension). Where it can, the calling goroutine's own thread waits for
// the answer in the kernel, so the answer wakes that thread directly
// rather than the runtime's network poller, which would hand the goroutine
// on to a thread of its own; the client closing or its peer going still
// ends the wait.
func (c *Client) ExchangeWaiting(req Message) (Message, error) {
	return c.exchangeChecked(context.Background(), req, c.awaitAnswer)
}

// exchangeChecked performs a call with exchangeIf and turns a failure
// answer into its error.
func (c *Client) exchangeChecked(ctx context.Context, req Message, await func(*msgConn)) (Message, error) {
	resp, _, err := c.exchangeIf(ctx, req, func(Message) bool { return false }, await)
	if err != nil {
		return Message{}, err
	}
	if _, err := checkResponse(resp); err != nil {
		closeFiles(resp.Files)
		return Message{}, err
	}
	return resp, nil
}

// Hijack sends req and, when the server answers with success, takes the
// connection out of the pool and returns it as a raw byte stream (extension),
// for a handler that set [Response.Hijack]. The caller owns conn and must
// close it. On failure no connection is returned.
func (c *Client) Hijack(ctx context.Context, req Message) (Message, net.Conn, error) {
	resp, conn, err := c.exchange(ctx, req, true)
	if err != nil {
		return Message{}, nil, err
	}
	if _, err := checkResponse(resp); err != nil {
		closeFiles(resp.Files)
		return Message{}, nil, err
	}
	return resp, conn, nil
}

// HijackIf sends req and, when the server answers with success and hijack
// says so of the answer, takes the connection out of the pool and returns
// it as a raw byte stream (extension): for callers that learn only from the
// answer whether the server took the connection over (a proxy). Otherwise
// conn is nil. Ownership is as for Hijack and Exchange.
func (c *Client) HijackIf(ctx context.Context, req Message, hijack func(Message) bool) (Message, net.Conn, error) {
	resp, conn, err := c.exchangeIf(ctx, req, hijack, nil)
	if err != nil {
		return Message{}, nil, err
	}
	if _, err := checkResponse(resp); err != nil {
		closeFiles(resp.Files)
		return Message{}, nil, err
	}
	return resp, conn, nil
}

// IsAlive checks if the helper process is still running: it reports false
// once the client is closed, the server has hung up its control connection,
// or a spawned helper process has exited.
func (c *Client) IsAlive() bool {
	select {
	case <-c.deadCh:
		return false
	default:
	}
	return c.Err() == nil
}

// Close shuts down the client connection and helper process. A spawned
// helper is asked to exit by closing the connections, then killed after a
// grace period, and waited for. Close is safe to call more than once; later
// calls return nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	if c.control != nil {
		c.control.Close()
	}
	c.markDead(ErrAlreadyClosed)
	if c.owner != nil {
		c.owner.Close()
	}
	c.wg.Wait()
	return nil
}
