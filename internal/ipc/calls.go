package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// ErrMalformed matches the error of a call whose answer does not decode as
// its message's answer type: the peer broke the protocol. It is neither a
// remote error nor a transport failure.
var ErrMalformed = errors.New("malformed answer")

// The typed calls: each sends a request body as the message of type t and
// decodes the body of a success answer into ans (nil ignores it). A failure
// answer is an *IPCError; a broken connection a [*TransportError]; an
// answer that does not decode an error matching [ErrMalformed]. Whether a
// successful answer hijacks the connection comes from the message's
// descriptor.

// Do performs a call without descriptors; any that come back are closed.
func (c *Client) Do(ctx context.Context, t uint16, req, ans Msg) error {
	files, conn, err := c.do(ctx, t, req, nil, ans, nil)
	closeFiles(files)
	if conn != nil {
		conn.Close()
	}
	return err
}

// DoFiles performs a call with files sent beside the request and returns
// the files of the answer, which the caller owns (extension). The caller
// keeps ownership of files.
func (c *Client) DoFiles(ctx context.Context, t uint16, req Msg, files []*os.File, ans Msg) ([]*os.File, error) {
	got, conn, err := c.do(ctx, t, req, files, ans, nil)
	if conn != nil {
		conn.Close()
	}
	return got, err
}

// DoStream performs a call whose successful answer may leave the
// connection as a raw byte stream, as the descriptor of t says: it returns
// the answer's files and, when the connection was taken over, the stream.
// The caller owns both.
func (c *Client) DoStream(ctx context.Context, t uint16, req Msg, ans Msg) ([]*os.File, net.Conn, error) {
	return c.do(ctx, t, req, nil, ans, nil)
}

// DoWaiting is DoFiles, without a context, for a call whose answer comes
// only after a long wait in its handler (see [Client.ExchangeWaiting]).
func (c *Client) DoWaiting(t uint16, req Msg, files []*os.File, ans Msg) ([]*os.File, error) {
	got, conn, err := c.do(context.Background(), t, req, files, ans, c.awaitAnswer)
	if conn != nil {
		conn.Close()
	}
	return got, err
}

// do is the typed call.
func (c *Client) do(ctx context.Context, t uint16, req Msg, files []*os.File, ans Msg, await func(*msgConn)) ([]*os.File, net.Conn, error) {
	var e Encoder
	if req != nil {
		req.Encode(&e)
	}
	hijack := func(Message) bool { return false }
	if d := Describe(t); d != nil && d.Hijack != HijackNever {
		hijack = func(m Message) bool { return d.Hijacks(len(m.Files)) }
	}
	resp, conn, err := c.exchangeIf(ctx, Message{Type: t, Payload: e.Bytes(), Files: files}, hijack, await)
	if err != nil {
		return nil, nil, err
	}
	payload, err := checkResponse(resp)
	switch {
	case err != nil:
	case len(payload) == 0:
		err = fmt.Errorf("%s: %w: no success byte", msgName(t), ErrMalformed)
	case ans != nil:
		if derr := ans.Decode(NewDecoder(payload[1:])); derr != nil {
			err = fmt.Errorf("%s: %w: %w", msgName(t), ErrMalformed, derr)
		}
	}
	if err != nil {
		closeFiles(resp.Files)
		if conn != nil {
			conn.Close()
		}
		return nil, nil, err
	}
	return resp.Files, conn, nil
}
