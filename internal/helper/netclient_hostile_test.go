package helper

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testcerts"
)

// stallingHelper is a network helper that holds a valid certificate and
// stalls: while silent, it takes connections, makes the TLS handshake and
// answers nothing more, not even the hello; otherwise its ipc server answers the hello, MsgRemoteNew
// (a sandbox "s1"), MsgRemoteAttach and MsgFsReadStream (a stream of a
// 1 GiB file that never brings a byte), and holds every other call until
// the test ends.
type stallingHelper struct {
	ln     net.Listener
	srv    *ipc.Server
	silent atomic.Bool
	end    chan struct{}

	mu   sync.Mutex
	held []net.Conn // guarded by mu
}

func startStallingHelper(t *testing.T, ca *testcerts.CA) *stallingHelper {
	t.Helper()
	cert := ca.Issue("helper", []string{"helper.test"}, nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{cert.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	h := &stallingHelper{ln: ln, end: make(chan struct{})}
	h.srv = ipc.NewServerListener(ln, ipc.CallHandlerFunc(h.serveCall))
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if h.silent.Load() {
				h.hold(c)
				wg.Go(func() { c.(*tls.Conn).Handshake() }) // then nothing more
				continue
			}
			wg.Go(func() { h.srv.ServeConn(c) })
		}
	})
	t.Cleanup(func() {
		close(h.end)
		h.srv.Close() // the listener too
		h.dropHeld()
		wg.Wait()
	})
	return h
}

func (h *stallingHelper) hold(c net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, c)
}

func (h *stallingHelper) heldConns() []net.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

func (h *stallingHelper) dropHeld() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.held {
		c.Close()
	}
	h.held = nil
}

func (h *stallingHelper) serveCall(ctx context.Context, req *ipc.Request) (*ipc.Response, error) {
	switch req.Type {
	case ipc.MsgRemoteNew:
		return &ipc.Response{Payload: ipc.Answer(&ipc.RemoteNewAns{ID: "s1", Config: []byte("{}")})}, nil
	case ipc.MsgRemoteAttach, ipc.MsgInstanceClose:
		return &ipc.Response{Payload: ipc.Answer(&ipc.Empty{})}, nil
	case ipc.MsgFsReadStream:
		return &ipc.Response{Payload: ipc.Answer(&ipc.ReadStreamAns{Size: 1 << 30}), Hijack: h.hold}, nil
	}
	select {
	case <-h.end:
	case <-ctx.Done():
	}
	return nil, errors.New("stalled")
}

// returnsSoon runs f and fails the test if it has not returned within a
// minute: a call that a cancel, a close or a deadline must end.
func returnsSoon(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s: still blocked after a minute", what)
	}
}

// TestNetClientHelperStalls: a helper that answers nothing (it holds a
// valid certificate: a compromised one) cannot hold the client's calls
// past their context, nor its Close: a dial whose hello is never
// answered ends with its context; a streamed ReadFile that never brings
// its bytes ends when the sandbox is closed; a redial in progress neither
// holds the other callers (they wait for their own context) nor Close,
// which ends it.
func TestNetClientHelperStalls(t *testing.T) {
	leakcheck.Check(t)
	ca := testcerts.NewCA("ca")
	h := startStallingHelper(t, ca)
	tc := ca.Issue("alice", nil, nil).ClientConfig(ca, "helper.test")

	h.silent.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	returnsSoon(t, "DialNet to a helper that never says hello, cancelled", func() {
		if _, err := DialNet(ctx, h.ln.Addr().String(), tc); !errors.Is(err, context.Canceled) {
			t.Errorf("DialNet: %v, want it cancelled", err)
		}
	})

	h.silent.Store(false)
	n, err := DialNet(context.Background(), h.ln.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	ni, _, err := n.Start(context.Background(), &ipc.RemoteNewReq{})
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := ipc.NewAgent(ni.Client()).ReadFileStream(context.Background(), "/big")
		read <- err
	}()
	for len(h.heldConns()) == 0 { // the stream has begun
		time.Sleep(time.Millisecond)
	}
	returnsSoon(t, "closing a sandbox with a stalled streamed read", func() { ni.Close() })
	returnsSoon(t, "a streamed read that never brings its bytes, after Close", func() {
		if err := <-read; err == nil {
			t.Error("a stream cut by Close succeeded")
		}
	})

	// The helper drops the control connection and answers no redial.
	h.silent.Store(true)
	n.mu.Lock()
	control := n.c
	n.mu.Unlock()
	control.Close()
	redial := make(chan error, 1)
	go func() {
		_, err := n.Pull(context.Background(), &ipc.PullReq{Ref: "x"})
		redial <- err
	}()
	for { // the redial has started
		n.mu.Lock()
		dialing := n.dialing != nil
		n.mu.Unlock()
		if dialing {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	returnsSoon(t, "a call while a redial is stalled", func() {
		if _, err := n.Capacity(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Capacity while a redial is stalled: %v, want its deadline", err)
		}
	})
	returnsSoon(t, "Close while a redial is stalled", func() { n.Close() })
	returnsSoon(t, "the stalled redial after Close", func() {
		if err := <-redial; !errors.Is(err, ipc.ErrAlreadyClosed) {
			t.Errorf("the redial after Close: %v, want ErrAlreadyClosed", err)
		}
	})
}

// TestNetClientStreamsSurviveRedial: an upload under way goes on when the
// client's control connection breaks (the next call dials again), and is
// ended by the client's Close alone; and CloseIfIdle leaves a client that
// is uploading as it is.
func TestNetClientStreamsSurviveRedial(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	s, ca := startServer(t, time.Minute)
	n := dialAs(t, s, ca, "alice")
	layer := tarOf(t, &tar.Header{Name: "f", Typeflag: tar.TypeReg})
	upload := func(half chan<- struct{}, rest <-chan struct{}) chan error {
		done := make(chan error, 1)
		go func() {
			done <- n.PutLayer(ctx, diffIDOf(layer), int64(len(layer)), func(w io.Writer) error {
				if _, err := w.Write(layer[:10]); err != nil {
					return err
				}
				close(half)
				<-rest
				_, err := w.Write(layer[10:])
				return err
			})
		}()
		return done
	}
	half, rest := make(chan struct{}), make(chan struct{})
	done := upload(half, rest)
	<-half
	if n.CloseIfIdle() {
		t.Error("CloseIfIdle closed a client whose upload is under way")
	}
	n.mu.Lock()
	n.c.Close() // the control connection breaks
	n.mu.Unlock()
	if _, err := n.Capacity(ctx); err != nil {
		t.Fatalf("a call after the control connection broke: %v", err)
	}
	close(rest)
	if err := <-done; err != nil {
		t.Errorf("an upload across a redial: %v", err)
	}

	half, rest = make(chan struct{}), make(chan struct{})
	done = upload(half, rest)
	<-half
	n.Close()
	close(rest)
	if err := <-done; err == nil {
		t.Error("an upload went on after the client's Close")
	}
}
