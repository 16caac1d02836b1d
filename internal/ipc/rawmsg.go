package ipc

import (
	"errors"
	"fmt"
	"io"
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

// maxStatusSize bounds a status frame.
const maxStatusSize = 64 << 10

// WriteStatus writes the outcome of a stream's work on w as one answer
// frame (extension): success, or err as the error answer a call would
// carry. MsgFsWriteStream and MsgFsReadStream end with it.
func WriteStatus(w io.Writer, err error) error {
	m := Message{Type: MsgResponse, Payload: []byte{ErrCodeOK}}
	if err != nil {
		var enc Encoder
		encodeIPCError(&enc, ToIPCError(err))
		m = Message{Type: MsgError, Payload: enc.Bytes()}
	}
	if err := WriteHeader(w, Header{Type: m.Type, Length: uint32(len(m.Payload))}); err != nil {
		return err
	}
	_, werr := w.Write(m.Payload)
	return werr
}

// ReadStatus reads a status frame WriteStatus wrote: nil for success, the
// peer's *IPCError, or a *TransportError when the stream ends or holds
// something else.
func ReadStatus(r io.Reader) error {
	h, err := ReadHeader(r)
	if err == nil && h.Length > maxStatusSize {
		err = fmt.Errorf("status frame of %d bytes", h.Length)
	}
	if err != nil {
		return &TransportError{Op: "read", Err: err}
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return &TransportError{Op: "read", Err: err}
	}
	_, err = checkResponse(Message{Type: h.Type, Payload: payload})
	return err
}
