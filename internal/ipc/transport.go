package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Message is one message with the descriptors that travel with it.
type Message struct {
	Type    uint16
	Payload []byte
	// Files travel beside the payload on Unix sockets (SCM_RIGHTS). A
	// received message's Files belong to its receiver, who must close them.
	Files []*os.File

	pooled *[]byte // Payload's buffer, when it came from the pool
}

// release returns the payload's buffer to the pool, if it came from there.
// The payload must not be used afterwards.
func (m *Message) release() {
	putBuf(m.pooled)
	m.pooled, m.Payload = nil, nil
}

// ErrNoDescriptorPassing is returned when a message with files is sent over a
// connection that cannot carry descriptors (anything but a Unix socket).
var ErrNoDescriptorPassing = errors.New("ipc: this connection cannot pass file descriptors")

// maxFilesPerMessage bounds the descriptors one message may carry.
const maxFilesPerMessage = 64

// readBufferSize is the size of a connection's read buffer; payloads larger
// than what it holds are read directly into their own slice.
const readBufferSize = 4 << 10

// writeCoalesceLimit is the largest payload copied next to its header so the
// message leaves in one write; larger ones are written with writev.
const writeCoalesceLimit = 32 << 10

// aLongTimeAgo is a deadline in the past, used to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// msgConn reads and writes whole messages on one connection. It is not safe
// for concurrent use: one goroutine reads and writes it at a time.
type msgConn struct {
	c  net.Conn
	uc *net.UnixConn // c, when it can carry descriptors; else nil

	rbuf []byte // unread bytes are rbuf[r:w]
	r, w int
	oob  []byte // control message space for received descriptors

	wbuf []byte // scratch for coalescing small messages
}

// newMsgConn wraps c.
func newMsgConn(c net.Conn) *msgConn {
	mc := &msgConn{c: c, rbuf: make([]byte, readBufferSize)}
	if uc, ok := c.(*net.UnixConn); ok && canPassDescriptors {
		mc.uc = uc
		mc.oob = make([]byte, oobSpace)
	}
	return mc
}

// fill reads at least once more into the read buffer, collecting any
// descriptors that arrive with the bytes into files.
func (mc *msgConn) fill(files *[]*os.File) error {
	if mc.r > 0 && mc.r == mc.w {
		mc.r, mc.w = 0, 0
	}
	if mc.w == len(mc.rbuf) { // compact
		mc.w = copy(mc.rbuf, mc.rbuf[mc.r:mc.w])
		mc.r = 0
	}
	n, err := mc.read(mc.rbuf[mc.w:], files)
	mc.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// read reads into p from the connection, collecting descriptors.
func (mc *msgConn) read(p []byte, files *[]*os.File) (int, error) {
	if mc.uc == nil {
		return mc.c.Read(p)
	}
	return recvWithRights(mc.uc, p, mc.oob, files)
}

// readMsg reads one whole message. On error, descriptors received so far are
// closed. It returns io.EOF only when the connection ended cleanly between
// messages.
func (mc *msgConn) readMsg() (Message, error) {
	return mc.readMsgPooled(false)
}

// eagerPayload is how much of a payload is allocated before its bytes
// arrive: a larger one grows as they do (doubling, then to its whole size
// once an eighth has come), so that a header that announces 64 MB and
// brings nothing holds 64 KB, not 64 MB, and what a peer makes its reader
// hold stays within eight times what it sent.
const eagerPayload = 64 << 10

// readMsgPooled is readMsg; with pool, a large payload is read into a pooled
// buffer that the caller must give back with Message.release.
func (mc *msgConn) readMsgPooled(pool bool) (Message, error) {
	var files []*os.File
	m, err := mc.readMsgFiles(&files, pool)
	if err != nil {
		closeFiles(files)
		return Message{}, err
	}
	m.Files = files
	return m, nil
}

func (mc *msgConn) readMsgFiles(files *[]*os.File, pool bool) (Message, error) {
	for mc.w-mc.r < HeaderSize {
		if err := mc.fill(files); err != nil {
			if errors.Is(err, io.EOF) && mc.w-mc.r > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Message{}, err
		}
	}
	h, err := parseHeader(mc.rbuf[mc.r:])
	if err != nil {
		return Message{}, err
	}
	mc.r += HeaderSize
	alloc := func(n int) ([]byte, *[]byte) {
		if pool {
			return getBuf(n)
		}
		return make([]byte, n), nil
	}
	size := int(h.Length)
	payload, pooled := alloc(min(size, eagerPayload))
	n := copy(payload, mc.rbuf[mc.r:mc.w])
	mc.r += n
	for n < size {
		if n == len(payload) { // what the peer has sent so far pays for more
			next := 2 * n
			if 8*n >= size {
				next = size // an eighth has come: the rest is taken at its word
			}
			next = min(next, size)
			if pooled != nil && cap(*pooled) >= next {
				payload = (*pooled)[:next]
			} else {
				more, morePooled := alloc(next)
				copy(more, payload)
				putBuf(pooled)
				payload, pooled = more, morePooled
			}
		}
		k, err := mc.read(payload[n:], files)
		n += k
		if err != nil && n < size {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			putBuf(pooled)
			return Message{}, err
		}
	}
	if len(*files) > maxFilesPerMessage {
		putBuf(pooled)
		return Message{}, fmt.Errorf("ipc: more than %d descriptors in one message", maxFilesPerMessage)
	}
	return Message{Type: h.Type, Payload: payload, pooled: pooled}, nil
}

// writeMsg writes one whole message. It does not close m.Files.
func (mc *msgConn) writeMsg(m Message) error {
	if len(m.Payload) > MaxMessageSize {
		return fmt.Errorf("message 0x%04x of %d bytes: %w", m.Type, len(m.Payload), ErrMessageTooLarge)
	}
	h := Header{Type: m.Type, Length: uint32(len(m.Payload))}
	if len(m.Files) > 0 {
		return mc.writeWithFiles(h, m)
	}
	if len(m.Payload) <= writeCoalesceLimit {
		mc.wbuf = append(mc.wbuf[:0], make([]byte, HeaderSize)...)
		putHeader(mc.wbuf, h)
		mc.wbuf = append(mc.wbuf, m.Payload...)
		_, err := mc.c.Write(mc.wbuf)
		return err
	}
	var hdr [HeaderSize]byte
	putHeader(hdr[:], h)
	bufs := net.Buffers{hdr[:], m.Payload}
	_, err := bufs.WriteTo(mc.c)
	return err
}

// writeWithFiles sends the header with the descriptors attached, then the
// payload; the receiver collects the descriptors while reading the header.
func (mc *msgConn) writeWithFiles(h Header, m Message) error {
	if mc.uc == nil {
		return ErrNoDescriptorPassing
	}
	if len(m.Files) > maxFilesPerMessage {
		return fmt.Errorf("ipc: %d descriptors in one message, at most %d", len(m.Files), maxFilesPerMessage)
	}
	var hdr [HeaderSize]byte
	putHeader(hdr[:], h)
	if err := sendWithRights(mc.uc, hdr[:], m.Files); err != nil {
		return err
	}
	if len(m.Payload) == 0 {
		return nil
	}
	_, err := mc.c.Write(m.Payload)
	return err
}

// hijack returns the connection as a plain byte stream for its new owner,
// starting with any bytes already buffered. The msgConn must not be used
// afterwards.
func (mc *msgConn) hijack() net.Conn {
	if mc.r == mc.w {
		return mc.c
	}
	rest := append([]byte(nil), mc.rbuf[mc.r:mc.w]...)
	mc.r, mc.w = 0, 0
	return &prefixConn{Conn: mc.c, prefix: rest}
}

// prefixConn is a net.Conn whose reads return prefix before the stream.
type prefixConn struct {
	net.Conn
	prefix []byte // guarded by the single-reader rule of net.Conn users
}

// NetConn returns the connection beneath.
func (p *prefixConn) NetConn() net.Conn { return p.Conn }

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// closeFiles closes every file in files.
func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
