package ipc

import (
	"errors"
	"fmt"
	"net"
)

// CallOn makes one typed call of message t on conn, which no [Client]
// owns yet (extension): the network helper's client names the instance a
// new connection serves (MsgRemoteAttach) this way before a Client takes
// the connection over. The peer must send nothing after its answer until
// the next request, as every server here does. It returns the peer's
// failure as an *IPCError, and a malformed answer or a broken connection
// as a [*TransportError].
func CallOn(conn net.Conn, t uint16, req, ans Msg) error {
	mc := newMsgConn(conn)
	var e Encoder
	req.Encode(&e)
	if err := mc.writeMsg(Message{Type: t, Payload: e.Bytes()}); err != nil {
		return &TransportError{Op: "write", Err: err}
	}
	resp, err := mc.readMsg()
	if err != nil {
		return &TransportError{Op: "read", Err: err}
	}
	if mc.r != mc.w {
		return &TransportError{Op: "read", Err: errors.New("bytes after the answer")}
	}
	payload, err := checkResponse(resp)
	if err != nil {
		return err
	}
	if len(payload) == 0 {
		return &TransportError{Op: "read", Err: errors.New("empty answer")}
	}
	if err := ans.Decode(NewDecoder(payload[1:])); err != nil {
		return &TransportError{Op: "read", Err: fmt.Errorf("%s answer: %w", msgName(t), err)}
	}
	return nil
}
