package ipc

import (
	"context"
	"fmt"
	"net"
	"os"
	"reflect"
)

// Route registers fn on mux as the handler of message type t: the one
// generic dispatcher of the protocol. It decodes the request's body into a
// Req (answering ErrCodeInvalidArgument when it is malformed), calls fn,
// and encodes the Ans it returns after the success byte; an error from fn
// becomes a MsgError. Files that came with the request and that fn did not
// take (by setting req.Files to nil) are closed once fn returns. Req and
// Ans must be the types the descriptor of t names; Route panics otherwise,
// as that is a programming error.
func Route[Req, Ans any, PReq interface {
	*Req
	Msg
}, PAns interface {
	*Ans
	Msg
}](mux *Mux, t uint16, fn func(req *Request, m *Req) (Ans, error)) {
	d := Describe(t)
	switch {
	case d == nil:
		panic(fmt.Sprintf("ipc: Route of message 0x%04x, which the table does not describe", t))
	case d.RequestType() != reflect.TypeFor[Req]() || d.AnswerType() != reflect.TypeFor[Ans]():
		panic(fmt.Sprintf("ipc: Route of %s with %v → %v; the table says %v → %v",
			d.Name, reflect.TypeFor[Req](), reflect.TypeFor[Ans](), d.RequestType(), d.AnswerType()))
	}
	mux.HandleCall(t, CallHandlerFunc(func(ctx context.Context, req *Request) (resp *Response, err error) {
		defer func() {
			closeFiles(req.Files)
			if err != nil {
				closeFiles(req.reply.Files)
			}
		}()
		var m Req
		if err := decodeBody(t, req.Payload, PReq(&m)); err != nil {
			return nil, err
		}
		ans, err := fn(req, &m)
		if err != nil {
			return nil, err
		}
		resp = &req.reply
		resp.Payload = appendAnswer(PAns(&ans))
		return resp, nil
	}))
}

// SendFiles makes files travel with the answer of a request served
// through [Route]; the server closes them once sent, or when the handler
// fails.
func (r *Request) SendFiles(files ...*os.File) {
	r.reply.Files = append(r.reply.Files, files...)
}

// HijackWith hands the connection to fn once the answer of a request
// served through [Route] is written (see [Response.Hijack]).
func (r *Request) HijackWith(fn func(conn net.Conn)) {
	r.reply.Hijack = fn
}
