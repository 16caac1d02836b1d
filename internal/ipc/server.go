package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/netutil"
)

// Server accepts connections from clients and serves their requests. Every
// connection is served on its own goroutine; all share one handler.
type Server struct {
	ln         net.Listener
	socketPath string               // removed on Close; empty when the server does not own a path
	checkPeer  func(net.Conn) error // refuses a connection before anything is read from it; nil: none
	h          CallHandler
	info       string
	log        *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
	wg     sync.WaitGroup        // one per connection goroutine

	closeEv *os.File // guarded by mu: readable once closed (see Request.AwaitReadable); nil until used
}

// Listen creates a server for h listening on a Unix socket at socketPath
// (extension: it takes any [CallHandler], such as a [*Mux]). A stale socket
// file at the path is replaced. The socket gets mode 0600 whatever the
// umask, and the server closes every connection from a process that runs
// as another user than this one (root excepted) before reading from it;
// put the socket in a private directory (see [SocketPath]) so that others
// cannot even connect.
func Listen(socketPath string, h CallHandler) (*Server, error) {
	removeStaleSocket(socketPath)
	ln, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("ipc: listening on %s: %w", socketPath, err)
	}
	if err := os.Chmod(socketPath, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("ipc: listening on %s: %w", socketPath, err)
	}
	s := NewServerListener(ln, h)
	s.socketPath = socketPath
	s.checkPeer = checkSameUser
	return s, nil
}

// ServeOnly makes the server accept connections from process pid alone
// (extension): a helper serves the process that started it, and no other
// process, of its user or root's, gets an answer from it. Call it before
// serving.
func (s *Server) ServeOnly(pid int) {
	s.checkPeer = func(c net.Conn) error { return checkPeerPid(c, pid, "the process this helper serves") }
}

// accept returns the next connection from a peer the server accepts,
// closing those it refuses.
func (s *Server) accept() (net.Conn, error) {
	for {
		conn, err := s.ln.Accept()
		if err != nil || s.checkPeer == nil {
			return conn, err
		}
		if err := s.checkPeer(conn); err != nil {
			s.log.Warn("ipc: refusing a connection", "err", err)
			conn.Close()
			continue
		}
		return conn, nil
	}
}

// NewServerListener creates a server for h on an existing listener
// (extension), such as one inherited from a parent process. The server owns
// ln and closes it on Close.
func NewServerListener(ln net.Listener, h CallHandler) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		ln:     ln,
		h:      h,
		info:   fmt.Sprintf("pid %d", os.Getpid()),
		log:    slog.New(slog.DiscardHandler),
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[net.Conn]struct{}),
	}
}

// SetInfo sets the description of this server sent in answer to [MsgHello].
// Call it before serving.
func (s *Server) SetInfo(info string) { s.info = info }

// SetLogger sets where the server logs handler panics and protocol errors.
// Call it before serving.
func (s *Server) SetLogger(l *slog.Logger) {
	if l != nil {
		s.log = l
	}
}

// SocketPath returns the path to the Unix socket.
func (s *Server) SocketPath() string {
	return s.socketPath
}

// Serve accepts connections and handles requests.
// This blocks until Close is called, and then returns nil.
func (s *Server) Serve() error {
	var pause time.Duration
	for {
		conn, err := s.accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if isTimeout(err) {
				continue
			}
			if netutil.WaitOutAccept(err, &pause, s.ctx.Done()) {
				s.log.Warn("ipc: accept: no room for a connection, waited", "err", err, "pause", pause)
				continue
			}
			if s.isClosed() {
				return nil
			}
			return fmt.Errorf("ipc: accept: %w", err)
		}
		pause = 0
		if !s.track(conn) {
			return nil
		}
		go s.serveConn(conn)
	}
}

// ServeOne serves one client and returns when it has gone. Its first
// connection is the client's control connection; further connections (the
// client's pool) are accepted and served alongside it until the control
// connection closes. The server is then closed: its other connections,
// listener and socket file are gone when ServeOne returns. This is the
// one-process-per-instance model: a helper or agent whose client died exits.
func (s *Server) ServeOne() error {
	conn, err := s.accept()
	if err != nil {
		if s.isClosed() {
			return nil
		}
		return fmt.Errorf("ipc: accept: %w", err)
	}
	if !s.track(conn) {
		return nil
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve() }()
	s.serveConn(conn)
	s.Close()
	return <-serveErr
}

// ServeConn serves requests on one connection until it closes, the peer
// breaks the protocol, or the server closes (extension).
func (s *Server) ServeConn(conn net.Conn) {
	s.ServeConnWith(conn, s.h)
}

// ServeConnWith serves requests on one connection with h instead of the
// server's handler (extension), so that a connection can carry state of
// its own (the network helper's attached instance); otherwise as
// [Server.ServeConn].
func (s *Server) ServeConnWith(conn net.Conn, h CallHandler) {
	if !s.track(conn) {
		return
	}
	s.serveConnWith(conn, h)
}

// track records conn as served, or closes it and returns false when the
// server is already closed.
func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return false
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	return true
}

// untrack forgets conn; hijacked connections are forgotten without closing.
func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close shuts down the server: it stops accepting, closes every connection
// (which fails the requests in flight), cancels handler contexts, waits for
// the connection goroutines, and removes the socket file. It is safe to call
// more than once; later calls return nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	// First: closing a connection waits for a handler polling it in
	// AwaitReadable, which this wakes.
	s.signalClose()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	if s.closeEv != nil {
		s.closeEv.Close()
	}
	if s.socketPath != "" {
		os.Remove(s.socketPath)
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// serverConn is one served connection.
type serverConn struct {
	srv *Server
	mc  *msgConn
	h   CallHandler

	// hang-up watch of the current request (see Request.Context); only the
	// connection's goroutine and the watch goroutine touch these, in order.
	watchDone   chan struct{}
	watchCancel context.CancelFunc
	watchByte   [1]byte
	watchN      int
	watchErr    error
	hungUp      bool
}

// serveConn runs the request loop of one connection.
func (s *Server) serveConn(conn net.Conn) { s.serveConnWith(conn, s.h) }

// serveConnWith runs the request loop of one connection with handler h.
func (s *Server) serveConnWith(conn net.Conn, h CallHandler) {
	defer s.wg.Done()
	sc := &serverConn{srv: s, mc: newMsgConn(conn), h: h}
	hijacked := false
	defer func() {
		if !hijacked {
			conn.Close()
		}
		s.untrack(conn)
	}()
	for {
		req, err := sc.mc.readMsgPooled(true)
		if err != nil {
			if !errors.Is(err, io.EOF) && !s.isClosed() && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("ipc: dropping connection", "err", err)
				if errors.Is(err, ErrMessageTooLarge) {
					sc.writeError(ToIPCError(err))
				}
			}
			return
		}
		if req.Type == MsgHello {
			ok := sc.hello(req)
			req.release()
			if !ok {
				return
			}
			continue
		}
		resp, herr := sc.call(req)
		req.release()
		if sc.hungUp {
			closeResponse(resp)
			abandonHijack(resp, sc)
			return
		}
		if herr != nil {
			closeResponse(resp)
			if sc.writeError(ToIPCError(herr)) != nil {
				return
			}
			continue
		}
		werr := sc.mc.writeMsg(Message{Type: MsgResponse, Payload: resp.Payload, Files: resp.Files})
		closeFiles(resp.Files)
		if werr != nil {
			abandonHijack(resp, sc)
			return
		}
		if resp.Hijack != nil {
			hijacked = true
			s.untrack(conn)
			resp.Hijack(sc.mc.hijack())
			return
		}
	}
}

// call runs the handler for one request, turning a panic into an error.
func (sc *serverConn) call(m Message) (resp *Response, err error) {
	req := &Request{Type: m.Type, Payload: m.Payload, Files: m.Files, sc: sc, baseCtx: sc.srv.ctx}
	defer func() {
		if req.watching {
			sc.stopWatch()
		}
		if p := recover(); p != nil {
			sc.srv.log.Error("ipc: handler panic", "type", fmt.Sprintf("0x%04x", m.Type), "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, &IPCError{Code: ErrCodeUnknown, Message: fmt.Sprintf("internal error handling message 0x%04x: %v", m.Type, p)}
		}
	}()
	resp, err = sc.h.ServeCall(sc.srv.ctx, req)
	if err == nil && resp == nil {
		resp = &Response{Payload: []byte{ErrCodeOK}}
	}
	return resp, err
}

// hello answers a handshake. It returns false when the connection must end.
func (sc *serverConn) hello(m Message) bool {
	var req HelloReq
	if err := req.Decode(NewDecoder(m.Payload)); err != nil || req.Magic != HelloMagic {
		msg := "not a cc-sandbox ipc handshake"
		if err != nil && req.Magic == HelloMagic {
			msg = "truncated handshake"
		}
		sc.writeError(&IPCError{Code: ErrCodeInvalidArgument, Message: msg, Op: "hello"})
		return false
	}
	if req.Version != ProtocolVersion {
		sc.writeError(&IPCError{Code: ErrCodeVersionMismatch, Op: "hello",
			Message: fmt.Sprintf("client speaks protocol version %d, this server speaks %d", req.Version, ProtocolVersion)})
		return false
	}
	resp := appendAnswer(&HelloAns{Version: ProtocolVersion, Info: sc.srv.info})
	return sc.mc.writeMsg(Message{Type: MsgResponse, Payload: resp}) == nil
}

func (sc *serverConn) writeError(e *IPCError) error {
	var enc Encoder
	encodeIPCError(&enc, e)
	return sc.mc.writeMsg(Message{Type: MsgError, Payload: enc.Bytes()})
}

// watchHangup starts watching the connection for the client hanging up and
// returns a context cancelled when it does (or when parent is).
func (sc *serverConn) watchHangup(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	sc.watchDone = make(chan struct{})
	sc.watchCancel = cancel
	sc.watchN, sc.watchErr = 0, nil
	go func() {
		defer close(sc.watchDone)
		sc.watchN, sc.watchErr = sc.mc.c.Read(sc.watchByte[:])
		if sc.watchN == 0 && !isTimeout(sc.watchErr) {
			cancel()
		}
	}()
	return ctx
}

// stopWatch ends the hang-up watch once the handler has returned, keeping
// any byte it read.
func (sc *serverConn) stopWatch() {
	sc.mc.c.SetReadDeadline(aLongTimeAgo)
	<-sc.watchDone
	sc.mc.c.SetReadDeadline(time.Time{})
	sc.watchCancel()
	switch {
	case sc.watchN > 0:
		// The client sent the next request early; put its first byte back.
		mc := sc.mc
		rest := append([]byte{sc.watchByte[0]}, mc.rbuf[mc.r:mc.w]...)
		if len(rest) > len(mc.rbuf) {
			mc.rbuf = make([]byte, len(rest))
		}
		mc.r, mc.w = 0, copy(mc.rbuf, rest)
	case sc.watchErr != nil && !isTimeout(sc.watchErr):
		sc.hungUp = true
	}
}

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closeResponse closes the files of a response that will not be sent.
func closeResponse(r *Response) {
	if r != nil {
		closeFiles(r.Files)
	}
}

// abandonHijack runs the hijack function of a response that was not sent
// on a closed connection, so that what it holds is released.
func abandonHijack(resp *Response, sc *serverConn) {
	if resp != nil && resp.Hijack != nil {
		c := sc.mc.hijack()
		c.Close()
		resp.Hijack(c)
	}
}
