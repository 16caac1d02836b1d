package ipc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// startServer serves a test mux on a fresh socket and returns a client.
func startServer(t *testing.T, events chan string) (*testMux, *Server, *Client) {
	t.Helper()
	tm := newTestMux(events)
	srv, err := Listen(SocketPath(), tm)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	c, err := ConnectTo(srv.SocketPath())
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return tm, srv, c
}

func TestCallEcho(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	_, srv, c := startServer(t, nil)
	got, err := c.Call(msgEcho, []byte("ping"))
	if err != nil || string(got) != "\x00ping" {
		t.Fatalf("Call = %q, %v", got, err)
	}
	got, err = c.CallWithEncoder(msgSeedEcho, func(e *Encoder) { e.String("seed") })
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(got)
	if ie, err := DecodeError(d); ie != nil || err != nil {
		t.Fatalf("success payload decoded as error %v %v", ie, err)
	}
	if s, err := d.String(); s != "seed" || err != nil {
		t.Fatalf("seed echo = %q, %v", s, err)
	}
	if got, err := c.Call(msgNoPayload, nil); err != nil || !bytes.Equal(got, []byte{0}) {
		t.Fatalf("nil response = %x, %v", got, err)
	}
	if !c.IsAlive() {
		t.Error("IsAlive false on a live server")
	}
	if c.Info() == "" {
		t.Error("no server info from the handshake")
	}
	if srv.SocketPath() == "" || len(srv.SocketPath()) > maxSocketPath {
		t.Errorf("socket path %q", srv.SocketPath())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c.IsAlive() {
		t.Error("IsAlive true after Close")
	}
	if _, err := c.Call(msgEcho, nil); !errors.Is(err, ErrAlreadyClosed) {
		t.Errorf("Call after Close: %v", err)
	}
}

func TestSeedHandlerServer(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	srv, err := NewServer(SocketPath(), func(msgType uint16, payload []byte) ([]byte, error) {
		if msgType == MsgInstanceID {
			return NewResponseBuilder().Success().String("inst-1").Build(), nil
		}
		return nil, &IPCError{Code: ErrCodeInvalidHandle, Message: "no such instance"}
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	c, err := ConnectTo(srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Call(MsgInstanceID, nil)
	if err != nil || !bytes.Equal(resp, NewResponseBuilder().Success().String("inst-1").Build()) {
		t.Fatalf("InstanceID = %x, %v", resp, err)
	}
	_, err = c.Call(MsgInstanceClose, nil)
	var ie *IPCError
	if !errors.As(err, &ie) || ie.Code != ErrCodeInvalidHandle || !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("error = %#v", err)
	}
}

func TestRemoteErrors(t *testing.T) {
	_, _, c := startServer(t, nil)
	for name, target := range namedErrors {
		_, err := c.Call(msgFail, []byte(name))
		if !errors.Is(err, target) {
			t.Errorf("%s: errors.Is(%v, %v) = false", name, err, target)
		}
		if errors.Is(err, ErrTransport) {
			t.Errorf("%s: a remote error matches ErrTransport", name)
		}
		var ie *IPCError
		if !errors.As(err, &ie) || ie.Op != "test" || ie.Path != "/p" {
			t.Errorf("%s: %#v", name, err)
		}
	}
	_, err := c.Call(0x7EEE, nil)
	var ie *IPCError
	if !errors.As(err, &ie) || ie.Code != ErrCodeInvalidArgument {
		t.Errorf("unknown message type: %v", err)
	}
	_, err = c.Call(msgPanic, nil)
	if !errors.As(err, &ie) || ie.Code != ErrCodeUnknown {
		t.Errorf("panicking handler: %v", err)
	}
	if got, err := c.Call(msgEcho, []byte("after")); err != nil || string(got) != "\x00after" {
		t.Errorf("server unusable after a panic: %q %v", got, err)
	}
}

// TestBlockedCallDelaysNothing: with a handler blocked until released, 100
// other concurrent calls on the same client complete.
func TestBlockedCallDelaysNothing(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	tm, _, c := startServer(t, nil)
	blocked := make(chan error, 1)
	go func() {
		_, err := c.Call(msgBlock, nil)
		blocked <- err
	}()
	tm.waitEntered(t, 1)

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := []byte{0, byte(i)}
			got, err := c.Call(msgEcho, want[1:])
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New("wrong echo")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-blocked:
		t.Fatalf("blocked call returned early: %v", err)
	default:
	}
	close(tm.release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
}

// TestCancelReachesHandler: cancelling the caller's context ends the call
// with ctx.Err() and cancels the handler's request context.
func TestCancelReachesHandler(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	events := make(chan string, 1)
	tm, _, c := startServer(t, events)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.CallContext(ctx, msgBlockCtx, nil)
		done <- err
	}()
	tm.waitEntered(t, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	select {
	case ev := <-events:
		if ev != "cancelled: context canceled" {
			t.Fatalf("handler saw %q", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler context was not cancelled")
	}
	if got, err := c.Call(msgEcho, []byte("x")); err != nil || string(got) != "\x00x" {
		t.Fatalf("client unusable after a cancel: %q %v", got, err)
	}
}

func TestDescriptorPassing(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	_, _, c := startServer(t, nil)

	// A descriptor sent with a response is usable by the client.
	resp, err := c.Exchange(context.Background(), Message{Type: msgSendFile, Payload: []byte("from the server")})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Files) != 1 {
		t.Fatalf("got %d files", len(resp.Files))
	}
	b, err := io.ReadAll(resp.Files[0])
	resp.Files[0].Close()
	if err != nil || string(b) != "from the server" {
		t.Fatalf("read passed pipe: %q %v", b, err)
	}

	// A descriptor sent with a request is usable by the handler.
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("from the client"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err = c.Exchange(context.Background(), Message{Type: msgReadFile, Files: []*os.File{f}})
	if err != nil || string(resp.Payload) != "\x00from the client" {
		t.Fatalf("handler read %q, %v", resp.Payload, err)
	}
	// The caller keeps its file.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatalf("sender's file unusable after sending: %v", err)
	}
}

func TestDescriptorNeedsUnixSocket(t *testing.T) {
	tm := newTestMux(nil)
	srv := NewServerListener(newPipeListener(), tm)
	defer srv.Close()
	c1, c2 := net.Pipe()
	go srv.ServeConn(c2)
	mc := newMsgConn(c1)
	defer c1.Close()
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if err := mc.writeMsg(Message{Type: msgEcho, Files: []*os.File{r}}); !errors.Is(err, ErrNoDescriptorPassing) {
		t.Fatalf("files over a pipe: %v", err)
	}
}

func TestHijack(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	_, _, c := startServer(t, nil)
	_, conn, err := c.Hijack(context.Background(), Message{Type: msgStream})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := bytes.Repeat([]byte("stream "), 10000)
	go conn.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echoed stream: %v", err)
	}
	if _, _, err := c.Hijack(context.Background(), Message{Type: msgFail, Payload: []byte("eof")}); !errors.Is(err, io.EOF) {
		t.Fatalf("failed hijack: %v", err)
	}
}

func TestVersionMismatch(t *testing.T) {
	tm := newTestMux(nil)
	srv, err := Listen(SocketPath(), tm)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	conn, err := net.Dial("unix", srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mc := newMsgConn(conn)
	var enc Encoder
	enc.String(HelloMagic)
	enc.Uint32(ProtocolVersion + 1)
	if err := mc.writeMsg(Message{Type: MsgHello, Payload: enc.Bytes()}); err != nil {
		t.Fatal(err)
	}
	resp, err := mc.readMsg()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkResponse(resp); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("server accepted another version: %v", err)
	}

	// A client meeting a server of another version refuses it.
	ln, err := net.Listen("unix", SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		mc := newMsgConn(conn)
		mc.readMsg()
		mc.writeMsg(Message{Type: MsgResponse, Payload: NewResponseBuilder().Success().Uint32(ProtocolVersion + 7).String("future").Build()})
	}()
	if _, err := ConnectTo(ln.Addr().String()); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("client accepted another version: %v", err)
	}
}

func TestOversizedRequestRefused(t *testing.T) {
	_, srv, _ := startServer(t, nil)
	conn, err := net.Dial("unix", srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{0x7f, 0x00, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	resp, err := newMsgConn(conn).readMsg()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkResponse(resp); !errors.Is(err, ErrTransport) && err == nil {
		t.Fatalf("oversized request answered %v", err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection still open after an oversized request: %v", err)
	}
}

// TestServerKilled: SIGKILL of the server process during a call makes the
// call return a transport error within a second; IsAlive turns false; no
// goroutine remains.
func TestServerKilled(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), testServerEnv+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	c, err := StartHelper(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.Call(msgEcho, []byte("hi")); err != nil || string(got) != "\x00hi" {
		t.Fatalf("echo through the helper: %q %v", got, err)
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := c.Call(msgBlock, nil)
		done <- err
	}()
	<-started
	time.Sleep(50 * time.Millisecond) // let the call reach the handler; the test holds either way
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTransport) {
			t.Fatalf("call during the kill: %v, want a transport error", err)
		}
		if d := time.Since(killed); d > time.Second {
			t.Errorf("call returned %v after the kill", d)
		}
	case <-time.After(time.Second):
		t.Fatal("call did not return within 1s of the kill")
	}
	deadline := time.Now().Add(time.Second)
	for c.IsAlive() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c.IsAlive() {
		t.Fatal("IsAlive true after the server was killed")
	}
	if _, err := c.Call(msgEcho, nil); !errors.Is(err, ErrTransport) {
		t.Fatalf("call after the kill: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.owner.(*helperProcess).socketPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
}

// TestHelperExitsWithClient: a ServeOne helper exits once its client closes.
func TestHelperExitsWithClient(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), testServerEnv+"=1", "GORACE=atexit_sleep_ms=0")
	c, err := StartHelper(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= helperGrace {
		t.Errorf("helper had to be killed (%v)", d)
	}
	if cmd.ProcessState == nil || !cmd.ProcessState.Exited() || cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("helper state %v", cmd.ProcessState)
	}
}

func TestServerCloseFailsCalls(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	tm, srv, c := startServer(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(msgBlock, nil)
		done <- err
	}()
	tm.waitEntered(t, 1)
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	if err := <-done; !errors.Is(err, ErrTransport) {
		t.Fatalf("call across Close: %v", err)
	}
	<-closed
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// pipeListener is a listener that never yields a connection, for servers
// fed through ServeConn.
type pipeListener struct{ done chan struct{} }

func newPipeListener() *pipeListener { return &pipeListener{done: make(chan struct{})} }

func (l *pipeListener) Accept() (net.Conn, error) { <-l.done; return nil, net.ErrClosed }
func (l *pipeListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// TestAnnouncedPayloadNotAllocated: a header that announces the largest
// payload and then brings a few bytes costs its reader what arrived (and
// a megabyte), not the announced size: 16 such messages, as many
// connections a peer may leave stalled, do not reserve a gigabyte.
func TestAnnouncedPayloadNotAllocated(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, pool := range []bool{false, true} {
		for range 8 {
			a, b := net.Pipe()
			go func() {
				var hdr [HeaderSize]byte
				putHeader(hdr[:], Header{Type: MsgResponse, Length: MaxMessageSize})
				b.Write(hdr[:])
				b.Write([]byte("a few bytes"))
				b.Close()
			}()
			if _, err := newMsgConn(a).readMsgPooled(pool); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("a payload cut short: %v, want io.ErrUnexpectedEOF", err)
			}
			a.Close()
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("16 headers announcing %d bytes each allocated %d bytes", MaxMessageSize, got)
	}

	// A payload that does arrive whole, larger than what is allocated
	// before it does, is read whole.
	a, b := net.Pipe()
	want := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16+1)
	go func() {
		var hdr [HeaderSize]byte
		putHeader(hdr[:], Header{Type: MsgResponse, Length: uint32(len(want))})
		b.Write(hdr[:])
		b.Write(want)
		b.Close()
	}()
	m, err := newMsgConn(a).readMsgPooled(true)
	if err != nil || !bytes.Equal(m.Payload, want) {
		t.Errorf("a 3 MB payload: %d bytes, equal %v, %v", len(m.Payload), bytes.Equal(m.Payload, want), err)
	}
	m.release()
	a.Close()
}
