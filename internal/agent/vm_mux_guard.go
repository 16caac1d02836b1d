package agent

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
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
	frameFlagFIN = 4
	frameFlagRST = 8
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
// as yamux sizes both with it.) The data the guest sends on a stream the
// host has closed is dropped (see closeStream). Writes and Close go to
// the port unchanged.
type guestFrames struct {
	conn io.ReadWriteCloser
	br   *bufio.Reader

	now func() time.Time // the clock of the ping budget and of closed

	// closeTimeout is the host session's StreamCloseTimeout: how long
	// closed keeps a stream the guest does not finish (0: until it does).
	closeTimeout time.Duration

	mu      sync.Mutex            // serialises Read
	hdr     [frameHeaderSize]byte // guarded by mu: the header being passed on
	hdrOut  int                   // guarded by mu: how much of hdr Read has returned
	payload uint32                // guarded by mu: payload bytes of the frame left to pass
	drop    uint32                // guarded by mu: payload bytes of the frame left to discard
	pings   pingBudget            // guarded by mu
	err     error                 // guarded by mu: why reading ended, for good

	cmu    sync.Mutex           // guards what follows; never held while blocking
	closed map[uint32]time.Time // the streams the host closed, and when
	swept  int                  // len(closed) after the last sweep
	// flying are the streams of the data frames whose payload yamux may
	// not have stored yet: those Read passed since it last began, and the
	// one still passing. drains holds what frees the data they leave in
	// a stream the host closed meanwhile (see closeStream).
	flying []uint32
	drains map[uint32]func()
}

// minSweep is the size closed grows to before its first sweep.
const minSweep = 64

// newGuestFrames wraps the host's end of the port, conn.
func newGuestFrames(conn io.ReadWriteCloser) *guestFrames {
	return &guestFrames{conn: conn, br: bufio.NewReader(conn), now: time.Now, hdrOut: frameHeaderSize,
		pings: pingBudget{tokens: pingBurst, last: time.Now()}, closed: map[uint32]time.Time{}, drains: map[uint32]func(){}}
}

// closeStream records that the host closed stream id both ways (not
// CloseWrite, after which the guest's data still counts). yamux keeps
// such a stream until the guest's FIN or RST, or closeTimeout, and
// stores the data the guest goes on sending into it, up to a window
// (1 MiB) that nobody reads: a guest that never finishes its streams
// could pin a window for each stream the host closes. So Read passes a
// data frame of a closed stream as its header with a length of 0, its
// flags intact, and discards the payload. The caller frees what the
// stream holds already; a frame whose payload was passing when the host
// closed still reaches the stream, and drain, called on a goroutine of
// its own once yamux has stored it (see stored), frees it in turn.
//
// A stream is forgotten when the guest's FIN or RST for it passes, or,
// with closeTimeout set, once closeTimeout has passed (yamux forgets it
// then too, and discards the data of streams it does not know): the
// streams are swept when their number has doubled since the last sweep,
// so closed holds at most twice the streams the host closed within
// closeTimeout before then, or minSweep, whichever is more. Each entry is
// far smaller than the stream yamux itself keeps as long.
func (g *guestFrames) closeStream(id uint32, drain func()) {
	g.cmu.Lock()
	defer g.cmu.Unlock()
	now := g.now()
	g.closed[id] = now
	if drain != nil && slices.Contains(g.flying, id) {
		g.drains[id] = drain
	}
	if len(g.closed) < max(2*g.swept, minSweep) {
		return
	}
	if g.closeTimeout > 0 {
		for id, t := range g.closed {
			if now.Sub(t) >= g.closeTimeout {
				delete(g.closed, id)
			}
		}
	}
	g.swept = len(g.closed)
}

// frameStarts accounts for a data or window frame of header h about to
// pass, and reports whether its payload is to be dropped.
func (g *guestFrames) frameStarts(h frameHeader) (drop bool) {
	g.cmu.Lock()
	defer g.cmu.Unlock()
	_, closed := g.closed[h.stream]
	if h.flags&(frameFlagFIN|frameFlagRST) != 0 {
		delete(g.closed, h.stream)
	}
	if closed && h.payload() > 0 {
		return true
	}
	if h.payload() > 0 {
		g.flying = append(g.flying, h.stream)
	}
	return false
}

// stored notes, as Read begins, that yamux has stored the payloads Read
// returned before, and runs the drains of their streams. yamux reads
// through a bufio.Reader from one goroutine: it calls Read again only
// once it has taken all that Read returned before. passing is the
// stream of the frame whose payload is still passing, if any.
func (g *guestFrames) stored(passing uint32, ok bool) {
	g.cmu.Lock()
	defer g.cmu.Unlock()
	for id, drain := range g.drains {
		if !ok || id != passing {
			go drain()
			delete(g.drains, id)
		}
	}
	g.flying = g.flying[:0]
	if ok {
		g.flying = append(g.flying, passing)
	}
}

// Read returns the guest's frames that pass. It blocks only until it has
// something to return.
func (g *guestFrames) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	g.stored(binary.BigEndian.Uint32(g.hdr[4:]), g.payload > 0)
	n := 0
	for n < len(p) {
		switch {
		case g.hdrOut < frameHeaderSize:
			k := copy(p[n:], g.hdr[g.hdrOut:])
			g.hdrOut += k
			n += k
		case g.drop > 0:
			if g.br.Buffered() == 0 {
				if n > 0 {
					return n, nil
				}
				if _, err := g.br.Peek(1); err != nil {
					return n, err
				}
			}
			k, _ := g.br.Discard(int(min(uint32(g.br.Buffered()), g.drop)))
			g.drop -= uint32(k)
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
			if h.version == 0 && (h.typ == frameData || h.typ == frameWindow) && g.frameStarts(h) {
				binary.BigEndian.PutUint32(g.hdr[8:], 0)
				g.drop, g.payload = g.payload, 0
			}
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
