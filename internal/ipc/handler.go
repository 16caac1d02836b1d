package ipc

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
)

// CallHandler serves requests with everything that comes with them
// (extension): descriptors, cancellation, and the option to take over the
// connection. ServeCall is called concurrently for requests on different
// connections. The ctx is cancelled when the server closes.
type CallHandler interface {
	ServeCall(ctx context.Context, req *Request) (*Response, error)
}

// CallHandlerFunc adapts a function to [CallHandler].
type CallHandlerFunc func(ctx context.Context, req *Request) (*Response, error)

// ServeCall calls f.
func (f CallHandlerFunc) ServeCall(ctx context.Context, req *Request) (*Response, error) {
	return f(ctx, req)
}

// Request is one request as a [CallHandler] sees it.
type Request struct {
	Type uint16
	// Payload is valid only until ServeCall returns: the server reuses
	// large buffers. Copy what must outlive the call.
	Payload []byte
	// Files came with the request. The handler owns them: it must close
	// them or hand them on.
	Files []*os.File

	reply    Response    // what Route sends back besides the body (SendFiles, HijackWith)
	sc       *serverConn // nil when the request did not come from a Server
	baseCtx  context.Context
	ctxOnce  sync.Once
	ctx      context.Context
	watching bool
}

// CanPassDescriptors reports whether the connection the request came on can
// carry descriptors back with the answer.
func (r *Request) CanPassDescriptors() bool {
	return r.sc != nil && r.sc.mc.uc != nil
}

// Context returns a context that is cancelled when the server closes or when
// the client hangs up while the handler is still running (for example
// because the caller's context was cancelled). Handlers that block call it;
// the hang-up watch costs a goroutine and starts only on the first call.
func (r *Request) Context() context.Context {
	r.ctxOnce.Do(func() {
		if r.baseCtx == nil {
			r.baseCtx = context.Background()
		}
		if r.sc == nil {
			r.ctx = r.baseCtx
			return
		}
		r.ctx = r.sc.watchHangup(r.baseCtx)
		r.watching = true
	})
	return r.ctx
}

// Response is a handler's answer (extension).
type Response struct {
	// Payload is the payload of the MsgResponse: the success byte
	// [ErrCodeOK], then the answer's body.
	Payload []byte
	// Files travel with the response. The server closes them after sending
	// (or failing to send).
	Files []*os.File
	// Hijack, when set, is given the connection once the response is
	// written; it then owns the connection as a raw byte stream, and the
	// server no longer reads requests from it. Hijack is called on the
	// connection's goroutine; it may return at once and use conn elsewhere.
	Hijack func(conn net.Conn)
}

// Mux is a message type multiplexer for the server: [Route] registers the
// typed handlers of the protocol on it. It is safe for concurrent use;
// handlers may be registered while serving.
type Mux struct {
	mu       sync.RWMutex
	handlers map[uint16]CallHandler // guarded by mu
}

// NewMux creates a new message multiplexer.
func NewMux() *Mux {
	return &Mux{handlers: make(map[uint16]CallHandler)}
}

// HandleCall registers a [CallHandler] for a message type (extension).
func (m *Mux) HandleCall(msgType uint16, h CallHandler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[msgType] = h
}

// ServeCall dispatches req to the handler registered for its type, or
// answers [ErrCodeInvalidArgument] for an unknown type.
func (m *Mux) ServeCall(ctx context.Context, req *Request) (*Response, error) {
	m.mu.RLock()
	h, ok := m.handlers[req.Type]
	m.mu.RUnlock()
	if !ok {
		closeFiles(req.Files)
		return nil, &IPCError{Code: ErrCodeInvalidArgument, Message: fmt.Sprintf("unknown message type: 0x%04x", req.Type)}
	}
	return h.ServeCall(ctx, req)
}
