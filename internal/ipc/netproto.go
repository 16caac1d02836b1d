package ipc

import (
	"encoding/binary"
	"errors"
	"io"
)

// Datagrams of a packet socket on the streamed path (MsgNetListenPacket
// without a descriptor) travel on the call's connection framed as a uint32
// length, then the peer's address (string) and the payload (bytes) as the
// Encoder writes them. A stream ends as the connection does: end of file
// after a half close (CloseWrite) either way, and a close of the stream
// closes the socket.

// maxPacketFrame bounds a framed datagram: the largest UDP payload and a
// generous address.
const maxPacketFrame = 1<<16 + 512

// ReadPacketFrame reads one framed datagram.
func ReadPacketFrame(r io.Reader) (string, []byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", nil, err
	}
	l := binary.BigEndian.Uint32(n[:])
	if l > maxPacketFrame {
		return "", nil, errors.New("datagram frame too large")
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", nil, err
	}
	d := NewDecoder(b)
	addr, err := d.String()
	if err != nil {
		return "", nil, err
	}
	payload, err := d.Bytes()
	return addr, payload, err
}

// WritePacketFrame writes one framed datagram, as a u32 length and then
// the encoded addr and payload.
func WritePacketFrame(w io.Writer, addr string, payload []byte) error {
	var e Encoder
	e.Uint32(0)
	e.String(addr)
	e.WriteBytes(payload)
	b := e.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := w.Write(b)
	return err
}
