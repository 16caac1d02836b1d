package agent

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// frame encodes a yamux frame: its header, then payload.
func frame(typ byte, flags uint16, stream, length uint32, payload []byte) []byte {
	b := []byte{0, typ}
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint32(b, stream)
	b = binary.BigEndian.AppendUint32(b, length)
	return append(b, payload...)
}

// pingRequest is a ping frame asking for an answer.
func pingRequest(id uint32) []byte { return frame(framePing, frameFlagSYN, 0, id, nil) }

// rwc is a read-only port for guestFrames.
type rwc struct{ io.Reader }

func (rwc) Write(p []byte) (int, error) { return len(p), nil }
func (rwc) Close() error                { return nil }

// splitReaders are the ways a test hands the guest's bytes to
// guestFrames: all at once, a byte a read, and half of each read.
var splitReaders = []struct {
	name string
	r    func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"bytes", iotest.OneByteReader},
	{"halves", iotest.HalfReader},
}

// heapInuse returns the bytes of heap in use after a collection.
func heapInuse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestGuestFrames: frames pass unchanged, however the port splits them,
// except the ping requests beyond the budget; a data frame's payload is
// never taken for a header.
func TestGuestFrames(t *testing.T) {
	var in, want bytes.Buffer
	add := func(f []byte, passes bool) {
		in.Write(f)
		if passes {
			want.Write(f)
		}
	}
	add(frame(frameWindow, 2, 1, 0, nil), true) // the agent's ACK of the notices
	// A payload that looks like ping requests is data.
	add(frame(frameData, 0, 1, 48, bytes.Repeat(pingRequest(9), 4)), true)
	add(frame(frameData, 0, 3, 0, nil), true)
	for i := range pingBurst + 3 {
		add(pingRequest(uint32(i)), i < pingBurst)
	}
	add(frame(framePing, 2, 0, 7, nil), true) // an answer to the host's ping
	big := bytes.Repeat([]byte{0xa5}, 100<<10)
	add(frame(frameData, 0, 3, uint32(len(big)), big), true)
	add(frame(frameGoAway, 0, 0, 0, nil), true)

	clock := time.Unix(1000, 0)
	for _, split := range splitReaders {
		t.Run(split.name, func(t *testing.T) {
			g := newGuestFrames(rwc{split.r(bytes.NewReader(in.Bytes()))})
			g.now = func() time.Time { return clock }
			g.pings = pingBudget{tokens: pingBurst, last: clock}
			got, err := io.ReadAll(g)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("passed %d bytes, want %d (the input of %d bytes without %d ping requests)", len(got), want.Len(), in.Len(), 3)
			}
		})
	}
}

// TestPingBudget: pingBurst requests at once, then one per pingRefill.
func TestPingBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := pingBudget{tokens: pingBurst, last: t0}
	for i := range pingBurst {
		if !b.take(t0) {
			t.Fatalf("request %d of a burst refused", i)
		}
	}
	if b.take(t0) {
		t.Fatal("a request past the burst passed")
	}
	if !b.take(t0.Add(pingRefill)) || b.take(t0.Add(pingRefill)) {
		t.Fatal("not one request more after pingRefill")
	}
	// A long quiet spell refills no more than the burst.
	later := t0.Add(time.Hour)
	n := 0
	for b.take(later) {
		n++
	}
	if n != pingBurst {
		t.Fatalf("%d requests passed after an hour, want %d", n, pingBurst)
	}
}

// countingConn counts the bytes read from the port.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// TestVMMuxPingFlood: a guest that stops reading its port and sends ping
// requests cannot make the host hold a goroutine for each (yamux answers
// each on a goroutine of its own, which waits up to a minute for the
// port): the host answers at most pingBurst + 60 of them a minute.
func TestVMMuxPingFlood(t *testing.T) {
	leakcheck.Check(t)
	const pings = 20000 // 240 KB from the guest
	hc, gc := portPair(t)
	port := &countingConn{Conn: hc}
	h, err := NewVMMuxClient(port)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	runtime.GC()
	before := runtime.NumGoroutine()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)

	flood := make([]byte, 0, pings*frameHeaderSize)
	for i := range pings {
		flood = append(flood, pingRequest(uint32(i))...)
	}
	go gc.Write(flood) // and never read
	deadline := time.Now().Add(time.Minute)
	for port.read.Load() < int64(len(flood)) {
		if time.Now().After(deadline) {
			t.Fatalf("the host read %d of the guest's %d bytes in a minute", port.read.Load(), len(flood))
		}
		time.Sleep(time.Millisecond)
	}
	grown := runtime.NumGoroutine() - before
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d ping requests: %d more goroutines, stacks %+d KiB", pings, grown, (int64(ms.StackInuse)-int64(ms0.StackInuse))>>10)
	if grown > 1000 {
		t.Errorf("%d ping requests made the host hold %d more goroutines, want at most %d or so", pings, grown, pingBurst+60)
	}
}

// TestGuestFramesRefuseOpen: a frame that opens a stream, a window update
// or data with SYN, ends the reading with an error after what came
// before it has passed.
func TestGuestFramesRefuseOpen(t *testing.T) {
	before := frame(frameData, 0, 1, 4, []byte{0, 0, 0, 3})
	for _, open := range [][]byte{
		frame(frameWindow, frameFlagSYN, 2, 0, nil),
		frame(frameData, frameFlagSYN, 4, 3, []byte("abc")),
	} {
		g := newGuestFrames(rwc{bytes.NewReader(append(append(before, open...), before...))})
		got, err := io.ReadAll(g)
		if err == nil || !strings.Contains(err.Error(), "opened stream") {
			t.Errorf("a guest opening a stream: %v, want an error saying so", err)
		}
		if !bytes.Equal(got, before) {
			t.Errorf("passed %x, want only the frame before the open, %x", got, before)
		}
		if n, err2 := g.Read(make([]byte, 64)); n != 0 || err2 != err {
			t.Errorf("a Read after the refusal: %d bytes, %v; want 0, %v", n, err2, err)
		}
	}
}

// TestVMMuxGuestStreams: a guest that opens streams to the host, which
// accepts none, and fills each one's window cannot make the host hold
// their data: the first stream it opens ends the session.
func TestVMMuxGuestStreams(t *testing.T) {
	leakcheck.Check(t)
	const streams = 256 // 64 MiB of data, 256 KiB in each stream's window
	hc, gc := portPair(t)
	h, err := NewVMMuxClient(hc)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	heap0 := heapInuse()

	go io.Copy(io.Discard, gc)
	data := make([]byte, 256<<10)
	for i := range streams {
		id := uint32(2 + 2*i) // the ids of the yamux server's streams
		if _, err := gc.Write(frame(frameWindow, frameFlagSYN, id, 0, nil)); err != nil {
			break // the host hung up
		}
		if _, err := gc.Write(frame(frameData, 0, id, uint32(len(data)), data)); err != nil {
			break
		}
	}
	grown := heapInuse() - heap0
	t.Logf("the host's heap after the guest's %d streams: %+d MiB", streams, grown>>20)
	if grown > 32<<20 {
		t.Errorf("the guest's unaccepted streams hold %d MiB of the host's heap", grown>>20)
	}
	select {
	case <-h.CloseChan():
	case <-time.After(time.Minute):
		t.Fatal("the session is still up a minute after the guest opened a stream")
	}
}

// TestGuestFramesClosedStreams: a data frame of a stream the host closed
// passes as its header with a length of 0 and its flags, its payload
// dropped, however the port splits it; the guest's FIN or RST for the
// stream ends the dropping. Other frames of the stream, and the data of
// other streams (one the host only half closed), pass unchanged.
func TestGuestFramesClosedStreams(t *testing.T) {
	const ack = 2
	var in, want bytes.Buffer
	add := func(f, passes []byte) {
		in.Write(f)
		want.Write(passes)
	}
	same := func(f []byte) { add(f, f) }
	add(frame(frameData, ack, 3, 5, []byte("hello")), frame(frameData, ack, 3, 0, nil))
	same(frame(frameWindow, 0, 3, 100, nil))
	same(frame(frameData, 0, 7, 3, []byte("abc"))) // half closed: not the guard's
	big := bytes.Repeat([]byte{0xa5}, 100<<10)
	add(frame(frameData, 0, 3, uint32(len(big)), big), frame(frameData, 0, 3, 0, nil))
	same(frame(frameData, 0, 3, 0, nil))
	add(frame(frameData, frameFlagFIN, 3, 4, []byte("bye!")), frame(frameData, frameFlagFIN, 3, 0, nil))
	same(frame(frameData, 0, 3, 3, []byte("xyz"))) // forgotten: yamux discards it
	add(frame(frameData, frameFlagRST, 5, 2, []byte("rs")), frame(frameData, frameFlagRST, 5, 0, nil))
	same(frame(frameData, 0, 5, 2, []byte("rs")))
	same(pingRequest(1))

	for _, split := range splitReaders {
		t.Run(split.name, func(t *testing.T) {
			g := newGuestFrames(rwc{split.r(bytes.NewReader(in.Bytes()))})
			g.closeStream(3, nil)
			g.closeStream(5, nil)
			got, err := io.ReadAll(g)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("passed %x\nwant %x", got, want.Bytes())
			}
			if len(g.closed) != 0 {
				t.Errorf("streams %v still closed after the guest's FIN and RST", g.closed)
			}
		})
	}
}

// TestGuestFramesClosedInFlight: a stream the host closes while a data
// frame of it passes gets that frame's payload, and its drain runs once
// yamux has stored it: when Read is called after returning the last byte.
func TestGuestFramesClosedInFlight(t *testing.T) {
	payload := bytes.Repeat([]byte{1}, 1000)
	in := append(frame(frameData, 0, 9, uint32(len(payload)), payload), frame(frameData, 0, 9, 3, []byte("abc"))...)
	g := newGuestFrames(rwc{bytes.NewReader(in)})
	drained := make(chan struct{})
	read := func(n int) []byte {
		t.Helper()
		b := make([]byte, n)
		k, err := io.ReadFull(g, b)
		if err != nil {
			t.Fatalf("read %d of %d bytes: %v", k, n, err)
		}
		return b
	}
	read(frameHeaderSize + 500)
	g.closeStream(9, func() { close(drained) })
	read(500) // the rest of the payload, which yamux stores
	select {
	case <-drained:
		t.Fatal("drained before yamux stored the frame's last bytes")
	case <-time.After(10 * time.Millisecond):
	}
	if got, want := read(frameHeaderSize), frame(frameData, 0, 9, 0, nil); !bytes.Equal(got, want) {
		t.Errorf("the next frame of the closed stream passed as %x, want %x", got, want)
	}
	select {
	case <-drained:
	case <-time.After(time.Minute):
		t.Fatal("not drained once yamux read on")
	}
	if n, err := g.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Errorf("after the frames: %d bytes, %v; want the payload dropped, then EOF", n, err)
	}
}

// TestGuestFramesClosedSwept: the streams the guest never finishes are
// forgotten after closeTimeout, when their number has doubled.
func TestGuestFramesClosedSwept(t *testing.T) {
	clock := time.Unix(1000, 0)
	g := newGuestFrames(rwc{bytes.NewReader(nil)})
	g.now = func() time.Time { return clock }
	g.closeTimeout = time.Minute
	id := uint32(1)
	closeN := func(n int) {
		for range n {
			id += 2
			g.closeStream(id, nil)
		}
	}
	closeN(minSweep)
	clock = clock.Add(2 * time.Minute)
	closeN(minSweep - 1)
	if len(g.closed) != 2*minSweep-1 {
		t.Fatalf("%d streams closed, want %d before the sweep", len(g.closed), 2*minSweep-1)
	}
	closeN(1)
	if len(g.closed) != minSweep {
		t.Fatalf("%d streams closed after the sweep, want the %d younger than closeTimeout", len(g.closed), minSweep)
	}
	// However many the host closes, at most twice those of the last
	// closeTimeout are kept.
	for range 100 {
		clock = clock.Add(time.Second)
		closeN(100)
		if len(g.closed) > 2*100*60+minSweep {
			t.Fatalf("%d streams kept", len(g.closed))
		}
	}
}
