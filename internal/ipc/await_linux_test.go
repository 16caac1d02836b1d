package ipc

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

const msgAwait uint16 = 0x7F20 // waits with AwaitReadable for the test's pipe

// awaitServer serves msgAwait, whose handler awaits the read end of a pipe
// the test writes to, and reports what AwaitReadable returned on results.
type awaitServer struct {
	srv     *Server
	client  *Client
	w       *os.File      // writing a byte makes the awaited end readable
	entered chan struct{} // receives when the handler starts waiting
	results chan error    // what AwaitReadable returned
	served  chan error
}

func startAwaitServer(t *testing.T) *awaitServer {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	as := &awaitServer{w: w, entered: make(chan struct{}, 1), results: make(chan error, 1), served: make(chan error, 1)}
	mux := NewMux()
	mux.HandleCall(msgAwait, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		as.entered <- struct{}{}
		err := req.AwaitReadable(int(r.Fd()))
		as.results <- err
		return nil, err
	}))
	as.srv, err = Listen(SocketPath(), mux)
	if err != nil {
		t.Fatal(err)
	}
	go func() { as.served <- as.srv.Serve() }()
	as.client, err = ConnectTo(as.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		as.client.Close()
		as.srv.Close()
		<-as.served
		r.Close()
		w.Close()
	})
	return as
}

// exchangeWaiting sends msgAwait with ExchangeWaiting and returns, once
// the handler waits, where the call's error will come.
func (as *awaitServer) exchangeWaiting() <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := as.client.ExchangeWaiting(Message{Type: msgAwait})
		done <- err
	}()
	<-as.entered
	return done
}

// TestAwaitReadable: the handler's wait ends when the descriptor turns
// readable, and the call is answered; ExchangeWaiting gets the answer.
func TestAwaitReadable(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	as := startAwaitServer(t)
	done := as.exchangeWaiting()
	as.w.Write([]byte{1})
	if err := <-as.results; err != nil {
		t.Fatalf("AwaitReadable with the descriptor readable: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ExchangeWaiting: %v", err)
	}
}

// TestAwaitReadableHangUp: a client that gives up on the call (its
// context ends, so it drops the connection) ends the handler's wait with
// context.Canceled, and the client stays usable.
func TestAwaitReadableHangUp(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	as := startAwaitServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := as.client.CallContext(ctx, msgAwait, nil)
		done <- err
	}()
	<-as.entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	if err := <-as.results; !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitReadable after the client hung up: %v", err)
	}
	later := as.exchangeWaiting()
	as.w.Write([]byte{1})
	if err := <-later; err != nil {
		t.Fatalf("a call after the hang-up: %v", err)
	}
	<-as.results
}

// TestAwaitReadableServerClose: closing the server ends a handler's wait
// (closing a descriptor alone would not wake a poll on it), and the call
// in flight fails.
func TestAwaitReadableServerClose(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	as := startAwaitServer(t)
	done := as.exchangeWaiting()
	as.srv.Close()
	if err := <-as.results; err == nil {
		t.Fatal("AwaitReadable returned nil when the server closed")
	}
	if err := <-done; err == nil {
		t.Fatal("the call succeeded though the server closed under it")
	}
}

// TestExchangeWaitingClientClose: closing the client ends an
// ExchangeWaiting whose answer has not come.
func TestExchangeWaitingClientClose(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	as := startAwaitServer(t)
	done := as.exchangeWaiting()
	as.client.Close()
	if err := <-done; err == nil {
		t.Fatal("ExchangeWaiting succeeded on a closed client")
	}
	if err := <-as.results; !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitReadable after the client closed: %v", err)
	}
}
