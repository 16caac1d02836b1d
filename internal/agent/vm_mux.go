package agent

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// VMMux carries the VM's ipc connections over its one virtio-serial port:
// a yamux session whose streams behave as the Unix sockets of the
// namespace backend do when one end closes. yamux's Close only ends the
// closer's writing: a peer that goes on writing blocks once the window is
// full, where a socket would fail with EPIPE (a command that exits without
// reading its input; a host that stops reading a command's output). So the
// first stream of the session carries close notices: the 4-byte id of each
// stream an end closed; the other end then fails writes on that stream
// with EPIPE (interrupting one that waits for window), while its reads
// still return what arrived, then end of file.
type VMMux struct {
	sess    *yamux.Session
	notices net.Conn     // the first stream
	frames  *guestFrames // what the host's end reads the guest through; nil in the agent

	wmu sync.Mutex // serialises notices
	// noticeTimeout bounds each notice's write (vmNoticeTimeout).
	noticeTimeout time.Duration

	mu    sync.Mutex
	conns map[uint32]*muxConn // guarded by mu: open streams, by id
}

// NewVMMuxClient starts the host's end on rwc (the control socket). The
// guest may be hostile: what it sends goes through guestFrames first.
func NewVMMuxClient(rwc io.ReadWriteCloser) (*VMMux, error) {
	cfg := VMMuxConfig()
	frames := newGuestFrames(rwc)
	frames.closeTimeout = cfg.StreamCloseTimeout
	sess, err := yamux.Client(frames, cfg)
	if err != nil {
		return nil, err
	}
	notices, err := sess.OpenStream()
	if err != nil {
		sess.Close()
		return nil, err
	}
	m := newVMMux(sess, notices)
	m.frames = frames
	return m, nil
}

// NewVMMuxServer starts the agent's end on rwc (the port), waiting for the
// host's first stream.
func NewVMMuxServer(rwc io.ReadWriteCloser) (*VMMux, error) {
	sess, err := yamux.Server(rwc, VMMuxConfig())
	if err != nil {
		return nil, err
	}
	notices, err := sess.AcceptStream()
	if err != nil {
		sess.Close()
		return nil, err
	}
	return newVMMux(sess, notices), nil
}

func newVMMux(sess *yamux.Session, notices net.Conn) *VMMux {
	m := &VMMux{sess: sess, notices: notices, noticeTimeout: vmNoticeTimeout, conns: map[uint32]*muxConn{}}
	go m.readNotices()
	return m
}

// readNotices marks the streams the peer closed.
func (m *VMMux) readNotices() {
	var b [4]byte
	for {
		if _, err := io.ReadFull(m.notices, b[:]); err != nil {
			return
		}
		m.mu.Lock()
		c := m.conns[binary.BigEndian.Uint32(b[:])]
		m.mu.Unlock()
		if c != nil { // else closed here already, or never accepted
			c.peerClosed()
		}
	}
}

// Open opens a connection to the other end.
func (m *VMMux) Open() (net.Conn, error) {
	s, err := m.sess.OpenStream()
	if err != nil {
		return nil, err
	}
	return m.track(s), nil
}

// Accept waits for the other end's next connection (net.Listener).
func (m *VMMux) Accept() (net.Conn, error) {
	s, err := m.sess.AcceptStream()
	if err != nil {
		return nil, err
	}
	return m.track(s), nil
}

// Close ends the session and every connection.
func (m *VMMux) Close() error { return m.sess.Close() }

// Addr is the session's address (net.Listener).
func (m *VMMux) Addr() net.Addr { return m.sess.Addr() }

// CloseChan is closed when the session ends.
func (m *VMMux) CloseChan() <-chan struct{} { return m.sess.CloseChan() }

func (m *VMMux) track(s *yamux.Stream) *muxConn {
	c := &muxConn{Stream: s, m: m}
	m.mu.Lock()
	m.conns[s.StreamID()] = c
	m.mu.Unlock()
	return c
}

// vmNoticeTimeout bounds the write of one close notice. The write waits
// only once the peer has left a whole window of notices unread (1 MiB,
// 256 Ki closes; see VMMuxConfig): a peer that reads them at all reads
// them long before this.
const vmNoticeTimeout = 10 * time.Second

// notify tells the peer that stream id closed here. A peer that does not
// take the notice within m.noticeTimeout is broken: the session ends, so
// that no Close waits on it for good (yamux waits for window with no
// bound but a deadline), and the calls over the session fail at once.
func (m *VMMux) notify(id uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.notices.SetWriteDeadline(time.Now().Add(m.noticeTimeout))
	if _, err := m.notices.Write(b[:]); err != nil {
		m.sess.Close() // a notice half written leaves the stream unusable too
	}
}

// muxConn is one stream with socket-like close behaviour.
type muxConn struct {
	*yamux.Stream
	m *VMMux

	// readMu lets one Read into yamux's at a time: its Read takes the
	// stream's state lock then its receive lock when the stream is
	// closed, and its window update the receive lock then the state
	// lock, so two at once (a caller's and Close's drain) can deadlock.
	readMu sync.Mutex

	mu       sync.Mutex
	closed   bool // guarded by mu: Close was called
	peerGone bool // guarded by mu: the peer closed the stream

	// The deadlines set, in Unix nanoseconds (0: none). yamux checks a
	// deadline only when it has to wait; a socket fails at once once its
	// deadline has passed, and so does muxConn.
	readDeadline, writeDeadline atomic.Int64
}

// SetDeadline sets both deadlines, as a socket's does.
func (c *muxConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline, as a socket's does.
func (c *muxConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	return c.Stream.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline, as a socket's does.
func (c *muxConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(unixNano(t))
	return c.Stream.SetWriteDeadline(t)
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// expired reports whether a deadline (Unix nanoseconds) has passed.
func expired(d int64) bool { return d != 0 && time.Now().UnixNano() >= d }

// peerClosed fails writes from now on, interrupting one that waits.
func (c *muxConn) peerClosed() {
	c.mu.Lock()
	c.peerGone = true
	c.mu.Unlock()
	c.Stream.SetWriteDeadline(time.Unix(1, 0))
}

// Write writes b, failing with EPIPE once the peer has closed.
func (c *muxConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	gone := c.peerGone
	c.mu.Unlock()
	if gone {
		return 0, c.opError("write", syscall.EPIPE)
	}
	if expired(c.writeDeadline.Load()) {
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	n, err := c.Stream.Write(b)
	if err != nil {
		c.mu.Lock()
		gone = c.peerGone
		c.mu.Unlock()
		if gone {
			return n, c.opError("write", syscall.EPIPE)
		}
		return n, c.mapErr("write", err)
	}
	return n, nil
}

// Read reads, with yamux's errors mapped to the socket's; after Close it
// fails with net.ErrClosed.
func (c *muxConn) Read(b []byte) (int, error) {
	if expired(c.readDeadline.Load()) {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if !closed {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
	}
	c.readMu.Lock()
	n, err := c.Stream.Read(b)
	c.readMu.Unlock()
	if err != nil && err != io.EOF {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return n, c.opError("read", net.ErrClosed)
		}
		err = c.mapErr("read", err)
	}
	return n, err
}

// CloseWrite ends this end's writing only: the peer reads end of file and
// may go on writing.
func (c *muxConn) CloseWrite() error { return c.Stream.Close() }

// Close ends the stream both ways, as closing a socket does: a Read
// blocked here returns net.ErrClosed, the peer reads end of file and its
// writes fail. What the peer sent that was not read is dropped, and on
// the host's end so is what the guest sends later (see
// guestFrames.closeStream): yamux keeps the stream until the peer closes
// it too, which a hostile guest never does.
func (c *muxConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	id := c.Stream.StreamID()
	if c.m.frames != nil {
		c.m.frames.closeStream(id, c.drain)
	}
	err := c.Stream.Close()
	c.Stream.SetReadDeadline(time.Unix(1, 0))
	c.drain()
	c.m.mu.Lock()
	delete(c.m.conns, id)
	c.m.mu.Unlock()
	c.m.notify(id)
	return err
}

// drain frees the data the stream holds, once Close has set its read
// deadline in the past: reads return what is stored, then fail.
func (c *muxConn) drain() {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	io.Copy(io.Discard, c.Stream)
	c.Stream.Shrink()
}

// mapErr turns yamux's errors into the ones a socket gives, so callers'
// errors.Is checks hold: net.ErrClosed, ECONNRESET, deadlines.
func (c *muxConn) mapErr(op string, err error) error {
	switch {
	case errors.Is(err, yamux.ErrStreamClosed), errors.Is(err, yamux.ErrSessionShutdown):
		return c.opError(op, net.ErrClosed)
	case errors.Is(err, yamux.ErrConnectionReset):
		return c.opError(op, syscall.ECONNRESET)
	case errors.Is(err, yamux.ErrTimeout):
		return c.opError(op, os.ErrDeadlineExceeded)
	}
	return err
}

func (c *muxConn) opError(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "vm", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
