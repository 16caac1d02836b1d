package ipc

import "context"

// The seed document's handler API: a handler sees a message type and a raw
// payload, and builds its answer with a [ResponseBuilder]. The SDK's own
// servers use [CallHandler] and [Route]; these adapters remain for code
// written against the seed.

// Handler is a function that handles a request and returns a response: the
// payload of a [MsgResponse] (start it with [ResponseBuilder.Success]), or an
// error that the server sends as a [MsgError] laid out by [ToIPCError].
// The request payload is valid only until the handler returns (the server
// reuses large buffers): keep a copy of anything needed later.
type Handler func(msgType uint16, payload []byte) ([]byte, error)

// ServeCall lets a Handler serve as a [CallHandler]. It closes any files that
// came with the request, which a Handler cannot see.
func (h Handler) ServeCall(ctx context.Context, req *Request) (*Response, error) {
	closeFiles(req.Files)
	req.Files = nil
	b, err := h(req.Type, req.Payload)
	if err != nil {
		return nil, err
	}
	return &Response{Payload: b}, nil
}

// MuxHandler handles a specific message type.
type MuxHandler func(dec *Decoder) ([]byte, error)

// Handle registers a handler for a message type, replacing any earlier one.
func (m *Mux) Handle(msgType uint16, handler MuxHandler) {
	m.HandleCall(msgType, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		closeFiles(req.Files)
		req.Files = nil
		b, err := handler(req.Decoder())
		if err != nil {
			return nil, err
		}
		return &Response{Payload: b}, nil
	}))
}

// Handler returns a Handler function for use with Server.
func (m *Mux) Handler() Handler {
	return func(msgType uint16, payload []byte) ([]byte, error) {
		resp, err := m.ServeCall(context.Background(), &Request{Type: msgType, Payload: payload})
		if err != nil {
			return nil, err
		}
		closeFiles(resp.Files)
		return resp.Payload, nil
	}
}

// NewServer creates a new IPC server listening on the given Unix socket path.
// A stale socket file at the path is replaced.
func NewServer(socketPath string, handler Handler) (*Server, error) {
	return Listen(socketPath, handler)
}

// Decoder returns a decoder over the request's payload.
func (r *Request) Decoder() *Decoder { return NewDecoder(r.Payload) }
