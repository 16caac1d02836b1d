package helper

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// failingWriter takes n bytes, then fails every write.
type failingWriter struct {
	bytes.Buffer
	n int
}

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > w.n {
		k := w.n - w.Len()
		w.Buffer.Write(p[:k])
		return k, errDiskFull
	}
	return w.Buffer.Write(p)
}

// TestCopyInPieces copies streams of sizes around its pieces' exactly,
// and, when the file's write or the stream's read fails, returns that
// error with what was written, its reading goroutine ended, and the
// stream's rest there for the caller to read (ReceiveWriteStream drains
// it before it answers).
func TestCopyInPieces(t *testing.T) {
	leakcheck.Check(t)
	data := make([]byte, 3*netStreamPiece+12345)
	rand.Read(data)
	for _, size := range []int{0, 1, netStreamPiece - 1, netStreamPiece, netStreamPiece + 1, 2 * netStreamPiece, len(data)} {
		var dst bytes.Buffer
		// One byte a read: the pieces are filled from many reads.
		src := iotest.OneByteReader(bytes.NewReader(data[:size]))
		if size > netStreamPiece {
			src = iotest.HalfReader(bytes.NewReader(data[:size]))
		}
		n, err := copyInPieces(&dst, src)
		if err != nil || n != int64(size) || !bytes.Equal(dst.Bytes(), data[:size]) {
			t.Fatalf("size %d: copied %d bytes (%d match: %t), %v", size, n, dst.Len(), bytes.Equal(dst.Bytes(), data[:size]), err)
		}
	}

	t.Run("write fails", func(t *testing.T) {
		for _, at := range []int{0, 100, netStreamPiece, 2*netStreamPiece + 7} {
			dst := &failingWriter{n: at}
			src := bytes.NewReader(data)
			n, err := copyInPieces(dst, src)
			if !errors.Is(err, errDiskFull) || n != int64(at) || !bytes.Equal(dst.Bytes(), data[:at]) {
				t.Fatalf("failing at %d: wrote %d, %v", at, n, err)
			}
			// The goroutine read at most the piece being written and the
			// next; what it did not read is still there, and no one else
			// reads it now.
			rest, _ := io.ReadAll(src)
			read := len(data) - len(rest)
			if read < at || read > at-at%netStreamPiece+2*netStreamPiece {
				t.Fatalf("failing at %d: %d bytes taken from the stream", at, read)
			}
			if !bytes.Equal(rest, data[read:]) {
				t.Fatalf("failing at %d: the stream's rest is not its own", at)
			}
		}
	})

	t.Run("read fails", func(t *testing.T) {
		errCut := errors.New("connection cut")
		var dst bytes.Buffer
		src := io.MultiReader(bytes.NewReader(data[:netStreamPiece+10]), iotest.ErrReader(errCut))
		n, err := copyInPieces(&dst, src)
		if !errors.Is(err, errCut) || n != netStreamPiece+10 || !bytes.Equal(dst.Bytes(), data[:n]) {
			t.Fatalf("wrote %d, %v; want %d and the read's error", n, err, netStreamPiece+10)
		}
	})
}

// TestNetStreamsBounded: a client's streamed writes are bounded in
// number (maxStreamsPerClient at once; one more is refused, and taken
// once one ends), and a stream that stalls is ended by the helper, so
// that a client cannot pin the helper's memory with streams it never
// finishes.
func TestNetStreamsBounded(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	open := func(t *testing.T, nc *NetClient) (*NetInstance, func() (net.Conn, error)) {
		ni, _, err := nc.Start(ctx, &ipc.RemoteNewReq{}) // scratch: an empty root to write into
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ni.Close() })
		return ni, func() (net.Conn, error) {
			_, conn, err := ni.Client().DoStream(ctx, ipc.MsgFsWriteStream, &ipc.WriteStreamReq{Path: "/big", Perm: 0o644, Size: 1 << 40}, nil)
			return conn, err
		}
	}

	s, ca := startServer(t, time.Minute)
	_, stream := open(t, dialAs(t, s, ca, "mallory"))
	var conns []net.Conn
	for range maxStreamsPerClient {
		conn, err := stream()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	if _, err := stream(); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "too many streamed") {
		t.Errorf("stream %d of one client: %v", maxStreamsPerClient+1, err)
	}
	conns[0].Close()
	if err := ipc.ReadStatus(conns[0]); err == nil {
		t.Error("a stream cut short succeeded")
	}
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if conn, err = stream(); err == nil {
			conns[0] = conn
			break
		}
	}
	if err != nil {
		t.Errorf("a stream once one has ended: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}

	slow, ca := startServer(t, time.Minute)
	slow.uploadWindow = 200 * time.Millisecond
	_, stream = open(t, dialAs(t, slow, ca, "mallory"))
	conn, err = stream()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(make([]byte, 1000))
	ended := make(chan error, 1)
	go func() { ended <- ipc.ReadStatus(conn) }() // what the helper answers once it gives up
	select {
	case err := <-ended:
		if err == nil {
			t.Error("a stalled stream succeeded")
		}
	case <-time.After(time.Minute):
		t.Error("a stalled stream was not ended in a minute (its window is 200ms)")
	}
}

// TestNetForwardedStreamsHeld: the agent's streams of a network client (a
// Dial here, which needs nothing in the sandbox) are bounded, each
// holding its slot until it ends; every stream ends with its sandbox, on
// the helper's side too (its slot comes back), and the helper's Close
// ends the streams of the sandboxes it stops and waits for them
// (leakcheck).
func TestNetForwardedStreamsHeld(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	s, ca := startServer(t, time.Minute)
	const perClient = 4
	s.agentStreams.setPerClient(perClient)
	mallory := dialAs(t, s, ca, "mallory")
	start := func() *NetInstance {
		ni, _, err := mallory.Start(ctx, &ipc.RemoteNewReq{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ni.Close() })
		return ni
	}
	dial := func(ni *NetInstance) (net.Conn, error) {
		_, conn, err := ni.Client().DoStream(ctx, ipc.MsgNetDial, &ipc.DialReq{Network: "udp", Addr: "127.0.0.1:9"}, &ipc.ConnAns{})
		if err == nil && conn == nil {
			t.Fatal("a dial over TCP answered without a stream")
		}
		return conn, err
	}
	// fill opens perClient streams of ni, then checks one more is refused
	// and that calls still go through.
	fill := func(ni *NetInstance) []net.Conn {
		var streams []net.Conn
		for deadline := time.Now().Add(30 * time.Second); len(streams) < perClient; {
			conn, err := dial(ni)
			switch {
			case err == nil:
				streams = append(streams, conn)
			case time.Now().After(deadline):
				t.Fatalf("stream %d of %d: %v", len(streams)+1, perClient, err)
			default:
				time.Sleep(10 * time.Millisecond) // the last sandbox's streams are ending
			}
		}
		if _, err := dial(ni); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "too many streams") {
			t.Errorf("stream %d of a client allowed %d: %v", perClient+1, perClient, err)
		}
		if err := ni.Client().Do(ctx, ipc.MsgFsStat, &ipc.PathReq{Path: "/"}, &ipc.StatAns{}); err != nil {
			t.Errorf("a call with every stream taken: %v", err)
		}
		return streams
	}
	// ended checks that the helper has ended c.
	ended := func(what string, c net.Conn) {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a stream of %s: read %v, want it ended", what, err)
		}
		c.Close()
	}

	ni := start()
	streams := fill(ni)
	streams[0].Close()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if streams[0], err = dial(ni); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no stream once one had ended: %v", err)
	}
	if err := ni.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range streams {
		ended("a closed sandbox", c)
	}
	streams = fill(start()) // their slots have come back
	s.Close()
	for _, c := range streams {
		ended("a closed helper", c)
	}
}

// connPairs listens on TCP in the sandbox agent serves and returns pair,
// which dials that listener and accepts: two streams, the ends of one
// connection in the sandbox.
func connPairs(t *testing.T, agent *ipc.Agent) (pair func() (dialed, accepted net.Conn)) {
	t.Helper()
	ctx := context.Background()
	ln, _, err := agent.Listen(ctx, ipc.ListenReq{Network: "tcp", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return func() (dialed, accepted net.Conn) {
		_, _, dialed, err := agent.Dial(ctx, ipc.DialReq{Network: "tcp", Addr: ln.Addr})
		if err != nil {
			t.Fatal(err)
		}
		_, accepted, err = agent.ListenerAccept(ctx, ln.Handle)
		if err != nil {
			t.Fatal(err)
		}
		return dialed, accepted
	}
}

// tcpOf returns the TCP connection beneath a network client's stream.
func tcpOf(c net.Conn) *net.TCPConn {
	raw, _ := beneath(c)
	return raw.(*net.TCPConn)
}

// TestNetStreamClientHangsUp: a client that closes a stream ends it on the
// helper's side even when the sandbox keeps its own end open (a
// connection the sandbox accepted and never closes): once the TCP
// connection beneath is gone (a reset here, as keepalives meet once the
// client's kernel lets its end go), its slot comes back. One that only
// half-closes, TLS alone or TCP too, keeps it, and still reads what the
// sandbox sends.
func TestNetStreamClientHangsUp(t *testing.T) {
	leakcheck.Check(t)
	every := hangUpEvery
	hangUpEvery = 20 * time.Millisecond
	t.Cleanup(func() { hangUpEvery = every }) // after the helper's Close, which waits for its streams
	ctx := context.Background()
	s, ca := startServer(t, time.Minute)
	s.agentStreams.setPerClient(3)
	ni, _, err := dialAs(t, s, ca, "mallory").Start(ctx, &ipc.RemoteNewReq{})
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	agent := ipc.NewAgent(ni.Client())
	pair := connPairs(t, agent)
	dialed, accepted := pair()
	defer accepted.Close()
	_, _, third, err := agent.Dial(ctx, ipc.DialReq{Network: "udp", Addr: "127.0.0.1:9"}) // the cap is 3
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	tcpOf(dialed).SetLinger(0) // its close resets the connection
	dialed.Close()             // the sandbox's other end (accepted) stays open
	var err2 error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var c net.Conn
		if _, _, c, err2 = agent.Dial(ctx, ipc.DialReq{Network: "udp", Addr: "127.0.0.1:9"}); err2 == nil {
			c.Close()
			break
		}
	}
	if err2 != nil {
		t.Fatalf("the slot of a stream its client closed did not come back: %v", err2)
	}

	// A half-close keeps the stream: the answer still arrives, the
	// helper's checks meanwhile notwithstanding.
	s.agentStreams.setPerClient(16)
	for _, tcpToo := range []bool{false, true} {
		dialed, accepted := pair()
		if err := dialed.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if tcpToo {
			if err := tcpOf(dialed).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * hangUpEvery) // checks that would cut it have had their chance
		if _, err := accepted.Write([]byte("answer")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 6)
		dialed.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(dialed, got); err != nil || string(got) != "answer" {
			t.Errorf("the answer to a stream half-closed (TCP too: %v): %q, %v", tcpToo, got, err)
		}
		dialed.Close()
		accepted.Close()
	}
}

// TestNetStreamSlowReader: a stream's reader may stop reading for longer
// than the connections' TCP_USER_TIMEOUT (shortened to a second here)
// without losing its stream: the kernel aborts a connection whose peer
// keeps its window closed that long, so streams do without it. The
// writer, backed up meanwhile, loses nothing either.
func TestNetStreamSlowReader(t *testing.T) {
	leakcheck.Check(t)
	timeout := userTimeout
	userTimeout = time.Second
	t.Cleanup(func() { userTimeout = timeout })
	ctx := context.Background()
	s, ca := startServer(t, time.Minute)
	ni, _, err := dialAs(t, s, ca, "alice").Start(ctx, &ipc.RemoteNewReq{})
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	dialed, accepted := connPairs(t, ipc.NewAgent(ni.Client()))()
	defer dialed.Close()
	defer accepted.Close()
	const total = 64 << 20
	written := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		var err error
		for i := 0; i < total/len(buf) && err == nil; i++ {
			_, err = accepted.Write(buf)
		}
		accepted.(interface{ CloseWrite() error }).CloseWrite()
		written <- err
	}()
	time.Sleep(4 * userTimeout) // not reading: every window on the way closes
	dialed.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := io.Copy(io.Discard, dialed)
	if n != total || err != nil {
		t.Errorf("a reader that paused for 4 user timeouts: %d of %d bytes, %v", n, total, err)
	}
	if err := <-written; err != nil {
		t.Errorf("the writer to a reader that paused: %v", err)
	}
}

// TestNetInstanceStreamsKeptWeakly: a sandbox's streams are kept (to be
// closed when the sandbox ends or its helper is found gone) without
// being held: those the program has dropped are forgotten, so a sandbox
// that lives long and dials often does not grow a list of them.
func TestNetInstanceStreamsKeptWeakly(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	s, ca := startServer(t, time.Minute)
	ni, _, err := dialAs(t, s, ca, "alice").Start(ctx, &ipc.RemoteNewReq{})
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	agent := ipc.NewAgent(ni.Client())
	dial := func() net.Conn {
		_, _, c, err := agent.Dial(ctx, ipc.DialReq{Network: "udp", Addr: "127.0.0.1:9"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for range 200 {
		dial().Close() // dropped at once
	}
	runtime.GC()
	runtime.GC()
	kept := dial()
	defer kept.Close()
	for range 200 {
		dial().Close()
		runtime.GC()
	}
	ni.streamsMu.Lock()
	n := len(ni.streams)
	ni.streamsMu.Unlock()
	if n > 300 {
		t.Errorf("%d streams kept of 401 dialed and 400 dropped", n)
	}
	ni.Close()
	if _, err := kept.Read(make([]byte, 1)); err == nil {
		t.Error("a stream of a closed sandbox still reads")
	}
}
