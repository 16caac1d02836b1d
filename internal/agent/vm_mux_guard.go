package agent

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The yamux frame header, as the guest sends it to the host: version,
// type, flags (uint16), stream id (uint32), length (uint32), big-endian. A
// data frame's length counts the payload bytes after the header; the
// other types carry none (a window update's length is a window delta, a
// ping's its id, a go away's a code).
const (
	frameHeaderSize = 12

	frameData   = 0
	frameWindow = 1
	framePing   = 2
	frameGoAway = 3

	frameFlagSYN = 1
)

// frameHeader is a decoded yamux frame header.
type frameHeader struct {
	version, typ byte
	flags        uint16
	stream       uint32
	length       uint32
}

// parseFrameHeader decodes the header at the start of b, which holds at
// least frameHeaderSize bytes.
func parseFrameHeader(b []byte) frameHeader {
	return frameHeader{
		version: b[0],
		typ:     b[1],
		flags:   binary.BigEndian.Uint16(b[2:]),
		stream:  binary.BigEndian.Uint32(b[4:]),
		length:  binary.BigEndian.Uint32(b[8:]),
	}
}

// payload is the number of bytes that follow the header in the stream.
func (h frameHeader) payload() uint32 {
	if h.version == 0 && h.typ == frameData {
		return h.length
	}
	return 0
}

// The budget of the guest's ping requests that reach the host's yamux
// (see pingBudget).
const (
	pingBurst  = 4
	pingRefill = time.Second
)

// pingBudget passes at most pingBurst ping requests at once, and one more
// each pingRefill. yamux answers each ping request on a goroutine of its
// own that waits up to ConnectionWriteTimeout for the connection (one
// minute, VMMuxConfig) when the peer does not read, so the budget bounds
// those goroutines to pingBurst + ConnectionWriteTimeout/pingRefill (64),
// whatever the guest sends. Neither end enables keep-alive or calls Ping
// (VMMuxConfig), so the agent never needs an answer; a keep-alive, were
// one enabled, pings far less often than this.
type pingBudget struct {
	tokens int
	last   time.Time // when tokens were last refilled
}

// take reports whether a ping request received at now may pass.
func (b *pingBudget) take(now time.Time) bool {
	if n := now.Sub(b.last) / pingRefill; n > 0 {
		b.tokens = int(min(pingBurst, int64(b.tokens)+int64(n)))
		b.last = b.last.Add(n * pingRefill)
	}
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}

// guestFrames is the host's end of the VM's port as the host's yamux
// session reads it: the guest's frames pass on, except ping requests
// beyond the budget (see pingBudget), which are dropped, and a frame that
// opens a stream, which ends the reading with an error, and so the
// session: only the host opens streams, and the host never accepts one.
// (yamux would keep up to AcceptBacklog of them, 1024, each holding a
// window of the guest's data, 256 KiB; a host session of a smaller
// AcceptBacklog would also have fewer of its own streams opening at once,
// as yamux sizes both with it.) Writes and Close go to the port
// unchanged.
type guestFrames struct {
	conn io.ReadWriteCloser
	br   *bufio.Reader

	now func() time.Time // the clock of the ping budget

	mu      sync.Mutex            // serialises Read
	hdr     [frameHeaderSize]byte // guarded by mu: the header being passed on
	hdrOut  int                   // guarded by mu: how much of hdr Read has returned
	payload uint32                // guarded by mu: payload bytes of the frame left to pass
	pings   pingBudget            // guarded by mu
	err     error                 // guarded by mu: why reading ended, for good
}

// newGuestFrames wraps the host's end of the port, conn.
func newGuestFrames(conn io.ReadWriteCloser) *guestFrames {
	return &guestFrames{conn: conn, br: bufio.NewReader(conn), now: time.Now, hdrOut: frameHeaderSize,
		pings: pingBudget{tokens: pingBurst, last: time.Now()}}
}

// Read returns the guest's frames that pass. It blocks only until it has
// something to return.
func (g *guestFrames) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	n := 0
	for n < len(p) {
		switch {
		case g.hdrOut < frameHeaderSize:
			k := copy(p[n:], g.hdr[g.hdrOut:])
			g.hdrOut += k
			n += k
		case g.payload > 0:
			if n > 0 && g.br.Buffered() == 0 {
				return n, nil
			}
			k, err := g.br.Read(p[n : n+int(min(uint32(len(p)-n), g.payload))])
			g.payload -= uint32(k)
			n += k
			if err != nil {
				return n, err
			}
		default:
			if n > 0 && g.br.Buffered() < frameHeaderSize {
				return n, nil
			}
			if _, err := io.ReadFull(g.br, g.hdr[:]); err != nil {
				return n, err
			}
			h := parseFrameHeader(g.hdr[:])
			pass, err := g.pass(h)
			if err != nil {
				g.err = err
				return n, err
			}
			if !pass {
				continue
			}
			g.hdrOut = 0
			g.payload = h.payload()
		}
	}
	return n, nil
}

// pass reports whether the frame of header h goes on to yamux, or why
// the guest is refused.
func (g *guestFrames) pass(h frameHeader) (bool, error) {
	if h.version != 0 || h.flags&frameFlagSYN == 0 {
		return true, nil
	}
	switch h.typ {
	case framePing:
		return g.pings.take(g.now()), nil
	case frameData, frameWindow:
		return false, fmt.Errorf("vm mux: the guest opened stream %d, where only the host opens streams", h.stream)
	}
	return true, nil
}

// Write writes to the port.
func (g *guestFrames) Write(p []byte) (int, error) { return g.conn.Write(p) }

// Close closes the port.
func (g *guestFrames) Close() error { return g.conn.Close() }

// LocalAddr is the port's, when it has one, so that the streams' errors
// name it as before.
func (g *guestFrames) LocalAddr() net.Addr {
	if a, ok := g.conn.(interface{ LocalAddr() net.Addr }); ok {
		return a.LocalAddr()
	}
	return vmAddr{}
}

// RemoteAddr is the port's peer, when it has one.
func (g *guestFrames) RemoteAddr() net.Addr {
	if a, ok := g.conn.(interface{ RemoteAddr() net.Addr }); ok {
		return a.RemoteAddr()
	}
	return vmAddr{}
}

// vmAddr names a port that has no address of its own.
type vmAddr struct{}

func (vmAddr) Network() string { return "vm" }
func (vmAddr) String() string  { return "vm" }
