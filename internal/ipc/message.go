package ipc

import (
	"fmt"
	"reflect"
)

// Msg is the body of one request or answer: a Go struct whose Encode
// appends its fields in wire order and whose Decode reads them back,
// checking every length against the bytes that remain (the peer may be
// hostile). An answer's body follows its success byte, which no Msg
// includes. Decode leaves bytes after the body unread: a later version may
// append fields.
type Msg interface {
	Encode(e *Encoder)
	Decode(d *Decoder) error
}

// Peer says who serves a message.
type Peer uint8

// The peers. A helper forwards every message of the agent to the agent of
// its instance.
const (
	PeerAgent   Peer = 1 << iota // the agent inside each sandbox
	PeerHelper                   // the helper process itself
	PeerSession                  // any server, about the connection itself
)

// String names the peers in p.
func (p Peer) String() string {
	switch p {
	case PeerAgent:
		return "agent"
	case PeerHelper:
		return "helper"
	case PeerAgent | PeerHelper:
		return "agent, helper"
	case PeerSession:
		return "session"
	}
	return fmt.Sprintf("Peer(%d)", uint8(p))
}

// HijackMode says whether a successful answer turns the call's connection
// into a raw byte stream (see [Response.Hijack] and [Client.Hijack]).
type HijackMode uint8

// The hijack modes.
const (
	HijackNever        HijackMode = iota
	HijackAlways                  // the answer is followed by the stream
	HijackWithoutFiles            // the streamed path: when the answer brings no descriptor
)

// Desc describes one message number: who serves it, the Go types of its
// request and answer bodies, and what else the exchange involves. The
// table of descriptors (table.go) is the protocol's one description: the
// agent and helper serve through it ([Route]), the helper forwards by it,
// the fuzz targets and golden tests walk it, and README.md lists it.
type Desc struct {
	Type    uint16
	Name    string // the constant's name, such as "MsgFsStat"
	Purpose string // one line
	Peer    Peer
	// Request and Answer return a new zero body of the message's request
	// and answer types.
	Request, Answer func() Msg
	// Blocks: the handler waits for something outside the call (an exit,
	// a connection, data); a client that hangs up must reach it.
	Blocks bool
	Hijack HijackMode
	// RequestFiles and AnswerFiles say which descriptors travel with the
	// request and the answer ("" for none).
	RequestFiles, AnswerFiles string
}

// RequestType and AnswerType return the Go types of the bodies.
func (d *Desc) RequestType() reflect.Type { return reflect.TypeOf(d.Request()).Elem() }

// AnswerType returns the Go type of the answer body.
func (d *Desc) AnswerType() reflect.Type { return reflect.TypeOf(d.Answer()).Elem() }

// Hijacks reports whether a successful answer that brought files
// descriptors leaves the connection as a stream.
func (d *Desc) Hijacks(files int) bool {
	switch d.Hijack {
	case HijackAlways:
		return true
	case HijackWithoutFiles:
		return files == 0
	}
	return false
}

// Describe returns the descriptor of message type t, or nil for a number
// no message of this protocol uses.
func Describe(t uint16) *Desc {
	return byType[t]
}

// Messages returns the descriptors of every message in use, in the order
// of their numbers. The slice is the caller's; the descriptors are shared.
func Messages() []*Desc {
	out := make([]*Desc, len(messages))
	for i := range messages {
		out[i] = &messages[i]
	}
	return out
}

// byType indexes messages by number; it is built once and never changes.
var byType = func() map[uint16]*Desc {
	m := make(map[uint16]*Desc, len(messages))
	for i := range messages {
		d := &messages[i]
		if m[d.Type] != nil {
			panic(fmt.Sprintf("ipc: message 0x%04x described twice", d.Type))
		}
		m[d.Type] = d
	}
	return m
}()

// body returns a constructor of a zero *T as a Msg.
func body[T any, P interface {
	*T
	Msg
}]() func() Msg {
	return func() Msg { return P(new(T)) }
}

// decodeBody decodes the body of a message of type t, turning a failure
// into an ErrCodeInvalidArgument error that names the message.
func decodeBody(t uint16, b []byte, m Msg) error {
	if err := m.Decode(NewDecoder(b)); err != nil {
		return &IPCError{Code: ErrCodeInvalidArgument, Message: fmt.Sprintf("malformed %s: %v", msgName(t), err)}
	}
	return nil
}

// DecodeRequest decodes the body b of a request of type t into m, as
// Route does: a malformed body gives an ErrCodeInvalidArgument error.
func DecodeRequest(t uint16, b []byte, m Msg) error { return decodeBody(t, b, m) }

// Answer returns the payload of a success answer carrying m, as Route
// makes it: the success byte, then the body.
func Answer(m Msg) []byte { return appendAnswer(m) }

// appendAnswer returns a success answer's payload: the success byte, then
// the body.
func appendAnswer(m Msg) []byte {
	var e Encoder
	e.Uint8(ErrCodeOK)
	if m != nil {
		m.Encode(&e)
	}
	return e.Bytes()
}

// msgName names message type t, for errors.
func msgName(t uint16) string {
	if d := byType[t]; d != nil {
		return d.Name
	}
	return fmt.Sprintf("message 0x%04x", t)
}
