package ipc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testServerEnv makes the test binary act as a helper process: it serves
// newTestMux on the socket given by -socket and exits when its client goes.
const testServerEnv = "CC_IPC_TEST_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(testServerEnv) == "1" {
		os.Exit(runTestServer())
	}
	if p := os.Getenv(testDialEnv); p != "" {
		os.Exit(runTestDial(p))
	}
	os.Exit(m.Run())
}

func runTestServer() int {
	flags := flag.NewFlagSet("server", flag.ContinueOnError)
	socket := flags.String("socket", "", "socket path")
	// The test binary's own flags come first; take the trailing pair.
	args := os.Args[1:]
	for i, a := range args {
		if a == "-socket" {
			args = args[i:]
			break
		}
	}
	if err := flags.Parse(args); err != nil || *socket == "" {
		fmt.Fprintln(os.Stderr, "test server: need -socket")
		return 2
	}
	parent := os.Getppid()
	srv, err := Listen(*socket, newTestMux(nil))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv.ServeOnly(parent) // as the real helper does
	if err := srv.ServeOne(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Test message types, in a range no real message uses.
const (
	msgEcho      uint16 = 0x7F00 // payload echoed after the success byte
	msgBlock     uint16 = 0x7F01 // blocks until released or cancelled
	msgFail      uint16 = 0x7F02 // fails with the sentinel named by the payload
	msgPanic     uint16 = 0x7F03 // panics
	msgSendFile  uint16 = 0x7F04 // answers with a file holding the payload
	msgReadFile  uint16 = 0x7F05 // reads the file sent with the request, answers its content
	msgStream    uint16 = 0x7F06 // hijacks the connection and echoes the stream
	msgSeedEcho  uint16 = 0x7F07 // echo registered through the seed's MuxHandler
	msgBlockCtx  uint16 = 0x7F08 // blocks until its request context ends, then reports on the events channel
	msgNoPayload uint16 = 0x7F09 // a CallHandler that returns (nil, nil)
)

var namedErrors = map[string]error{
	"notexist": fs.ErrNotExist, "eof": io.EOF, "notrunning": ErrNotRunning, "canceled": context.Canceled,
}

// testMux is the handler set of the tests.
type testMux struct {
	*Mux
	release chan struct{} // closing it releases msgBlock calls
	entered chan struct{} // receives once per msgBlock call that started
	events  chan string   // msgBlockCtx reports here
}

func newTestMux(events chan string) *testMux {
	tm := &testMux{Mux: NewMux(), release: make(chan struct{}), entered: make(chan struct{}, 16), events: events}
	tm.HandleCall(msgEcho, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		return &Response{Payload: append([]byte{ErrCodeOK}, req.Payload...)}, nil
	}))
	tm.HandleCall(msgBlock, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		select {
		case tm.entered <- struct{}{}:
		default:
		}
		select {
		case <-tm.release:
			return &Response{Payload: []byte{ErrCodeOK}}, nil
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}))
	tm.HandleCall(msgBlockCtx, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		select {
		case tm.entered <- struct{}{}:
		default:
		}
		<-req.Context().Done()
		if tm.events != nil {
			tm.events <- "cancelled: " + req.Context().Err().Error()
		}
		return nil, req.Context().Err()
	}))
	tm.HandleCall(msgFail, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		if err, ok := namedErrors[string(req.Payload)]; ok {
			return nil, &fs.PathError{Op: "test", Path: "/p", Err: err}
		}
		return nil, errors.New("no such error name")
	}))
	tm.HandleCall(msgPanic, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		panic("test panic")
	}))
	tm.HandleCall(msgSendFile, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		go func() { w.Write(req.Payload); w.Close() }()
		return &Response{Payload: []byte{ErrCodeOK}, Files: []*os.File{r}}, nil
	}))
	tm.HandleCall(msgReadFile, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		defer closeFiles(req.Files)
		if len(req.Files) != 1 {
			return nil, fmt.Errorf("got %d files", len(req.Files))
		}
		b, err := io.ReadAll(req.Files[0])
		if err != nil {
			return nil, err
		}
		return &Response{Payload: append([]byte{ErrCodeOK}, b...)}, nil
	}))
	tm.HandleCall(msgStream, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		return &Response{Payload: []byte{ErrCodeOK}, Hijack: func(c net.Conn) {
			go func() { io.Copy(c, c); c.Close() }()
		}}, nil
	}))
	tm.Handle(msgSeedEcho, func(dec *Decoder) ([]byte, error) {
		s, err := dec.String()
		if err != nil {
			return nil, err
		}
		return NewResponseBuilder().Success().String(s).Build(), nil
	})
	tm.HandleCall(msgNoPayload, CallHandlerFunc(func(ctx context.Context, req *Request) (*Response, error) {
		return nil, nil
	}))
	return tm
}

// waitEntered waits for n blocking handlers to start.
func (tm *testMux) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-tm.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("blocking handler never started")
		}
	}
}

// ownSockets is the path prefix of this process's socket files (see
// SocketPath), for the leak checks.
var ownSockets = func() string {
	dir, err := SocketDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, fmt.Sprintf("cc-%d-", os.Getpid()))
}()
