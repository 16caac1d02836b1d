package agent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// portPair returns the two ends of a VM's port: a connected pair of Unix
// stream sockets, as QEMU's control socket is on the host. Both are closed
// in cleanup.
func portPair(t *testing.T) (host, guest net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "port")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		t.Cleanup(func() { c.Close() })
	}
	return conns[0], conns[1]
}

// TestVMMuxRoundTrip: the host's and the agent's ends carry data both
// ways, larger than a window, and a stream one end closes fails the
// other's writes with EPIPE after its reads end.
func TestVMMuxRoundTrip(t *testing.T) {
	leakcheck.Check(t)
	hc, gc := portPair(t)
	served := make(chan *VMMux, 1)
	go func() {
		g, err := NewVMMuxServer(gc)
		if err != nil {
			served <- nil
			return
		}
		served <- g
	}()
	h, err := NewVMMuxClient(hc)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := <-served
	if g == nil {
		t.Fatal("the agent's end did not start")
	}
	defer g.Close()

	want := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	hs, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	gs, err := g.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// The agent echoes what it reads, then closes.
	go func() {
		io.Copy(gs, gs)
		gs.Close()
	}()
	go func() {
		hs.Write(want)
		hs.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(hs)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes came back as %d bytes, or changed", len(want), len(got))
	}
	// The agent closed its end: once the notice is in, writes fail.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := hs.Write([]byte("x"))
		if errors.Is(err, syscall.EPIPE) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write after the agent closed: %v, want EPIPE", err)
		}
		time.Sleep(time.Millisecond)
	}
	hs.Close()
}

// TestVMMuxNoticeStall: a guest that never reads the first stream, where
// the host writes a notice for each stream it closes, cannot make the
// host's Close wait for good once a window of notices (1 MiB) is unread:
// the next notice waits noticeTimeout at most, then the session ends and
// every later Close returns at once.
func TestVMMuxNoticeStall(t *testing.T) {
	leakcheck.Check(t)
	hc, gc := portPair(t)
	// The guest's yamux accepts the notices and every stream, and reads
	// none of them.
	gsess, err := yamux.Server(gc, VMMuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer gsess.Close()
	go func() {
		for {
			if _, err := gsess.AcceptStream(); err != nil {
				return
			}
		}
	}()
	h, err := NewVMMuxClient(hc)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.noticeTimeout = 100 * time.Millisecond

	a, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	// 256 Ki notices the guest leaves unread: its whole window.
	h.wmu.Lock()
	_, err = h.notices.Write(make([]byte, 1<<20))
	h.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []net.Conn{a, b} {
		closed := make(chan struct{})
		go func() {
			c.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(time.Minute):
			t.Fatal("a stream's Close still waits on a guest that takes no notices, after a minute")
		}
	}
	select {
	case <-h.CloseChan():
	default:
		t.Error("the session is still up after a notice the guest did not take")
	}
	if c, err := h.Open(); err == nil {
		c.Close()
		t.Error("Open works on a session whose guest takes no notices")
	}
}

// TestVMMuxClosedStreamsPinned: a guest that never finishes the streams
// the host closes, and fills each one's window before the host closes it
// and again after (1 MiB once the host has read from it), cannot make the
// host hold that data: yamux keeps such a stream until StreamCloseTimeout
// (5 minutes), but the host's Close drops what the stream holds, and the
// host drops what the guest sends on it later. A stream the host only
// half closed still gets the guest's data.
func TestVMMuxClosedStreamsPinned(t *testing.T) {
	leakcheck.Check(t)
	const streams = 128
	hc, gc := portPair(t)
	gsess, err := yamux.Server(gc, VMMuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer gsess.Close()
	junk := make([]byte, 1<<20)
	var written sync.WaitGroup
	go func() {
		notices, err := gsess.AcceptStream()
		if err != nil {
			return
		}
		go io.Copy(io.Discard, notices)
		for {
			s, err := gsess.AcceptStream()
			if err != nil {
				return
			}
			written.Add(1)
			go func() {
				defer written.Done()
				// Answer what the host sends with the first window
				// (256 KiB), of which the host reads a byte; once the
				// host is done, fill the window again (the write stops
				// there), and never close.
				io.Copy(io.Discard, io.LimitReader(s, 1))
				s.Write(junk[:256<<10])
				io.Copy(io.Discard, s)
				s.SetWriteDeadline(time.Now().Add(2 * time.Second))
				s.Write(junk)
			}()
		}
	}()
	port := &countingConn{Conn: hc}
	h, err := NewVMMuxClient(port)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	heap0 := heapInuse()

	call := func() net.Conn {
		t.Helper()
		c, err := h.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for range streams {
		call().Close()
	}
	half := call()
	half.(interface{ CloseWrite() error }).CloseWrite()
	if n, err := io.Copy(io.Discard, io.LimitReader(half, int64(len(junk)))); n != int64(len(junk)) {
		t.Fatalf("a half closed stream read %d bytes of the guest's %d: %v", n, len(junk), err)
	}
	half.Close()
	written.Wait()
	// Everything the guest sent has reached the host's yamux.
	deadline := time.Now().Add(time.Minute)
	for last := int64(-1); port.read.Load() != last; {
		last = port.read.Load()
		if time.Now().After(deadline) {
			t.Fatal("the host still reads the guest's port after a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if port.read.Load() < streams<<20 {
		t.Fatalf("the host read %d bytes of the guest's port, want %d at least", port.read.Load(), streams<<20)
	}
	grown := heapInuse() - heap0
	t.Logf("the host's heap after %d closed streams filled by the guest: %+d MiB", streams, grown>>20)
	if grown > 16<<20 {
		t.Errorf("the guest pinned %d MiB of the host's heap in %d streams the host closed", grown>>20, streams)
	}
}

// TestVMMuxCloseDuringRead: Close while another goroutine reads the
// stream, the guest having sent data and closed its end. yamux's Read
// takes its state lock then its receive lock on a closed stream, and its
// window update the other way round, so two Reads at once (the caller's,
// and the drain of what the stream holds that Close does) could each hold
// one and wait for the other for good: Close and the Read must return.
func TestVMMuxCloseDuringRead(t *testing.T) {
	leakcheck.Check(t)
	hc, gc := portPair(t)
	served := make(chan *VMMux, 1)
	go func() {
		g, err := NewVMMuxServer(gc)
		if err != nil {
			served <- nil
			return
		}
		served <- g
	}()
	h, err := NewVMMuxClient(hc)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := <-served
	if g == nil {
		t.Fatal("the agent's end did not start")
	}
	defer g.Close()
	data := bytes.Repeat([]byte{'x'}, 200<<10) // past half the window: reads send window updates
	for i := range 300 {
		hs, err := h.Open()
		if err != nil {
			t.Fatal(err)
		}
		gs, err := g.Accept()
		if err != nil {
			t.Fatal(err)
		}
		gs.Write(data)
		gs.Close()
		done := make(chan struct{}, 2)
		go func() {
			buf := make([]byte, 1024)
			for {
				if _, err := hs.Read(buf); err != nil {
					break
				}
			}
			done <- struct{}{}
		}()
		go func() { hs.Close(); done <- struct{}{} }()
		for range 2 {
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatalf("round %d: Close and a Read at once still waiting after a minute", i)
			}
		}
	}
}
