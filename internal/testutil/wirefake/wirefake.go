// Package wirefake is a fake agent and helper for the wire's golden tests:
// it records every request it gets and answers each with the golden answer
// (internal/ipc/testdata/wire.golden) of the label the test gave the step
// that sent it, so a test can drive a real caller and compare what it sent
// with the golden bytes.
package wirefake

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/wiregolden"
)

// Server is the fake. A MsgInstanceWait blocks until its caller gives up;
// every other request gets its golden answer, and hijacks the connection
// (then closes it) where the message's descriptor says so.
type Server struct {
	golden map[string]wiregolden.Msg
	list   []wiregolden.Msg
	// Waiting is closed when a MsgInstanceWait arrives.
	Waiting chan struct{}

	mu    sync.Mutex
	label string         // guarded by mu: the step running
	n     map[string]int // guarded by mu: requests per step
	recs  []record       // guarded by mu
}

type record struct {
	label string
	typ   uint16
	files int
	req   []byte
}

// Start serves a fake on a Unix socket in a temporary directory and
// returns it with a client connected to it; both close in t's cleanup.
func Start(t testing.TB) (*Server, *ipc.Client) {
	t.Helper()
	list, err := wiregolden.Read()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{golden: map[string]wiregolden.Msg{}, list: list, Waiting: make(chan struct{}), n: map[string]int{}}
	for _, g := range list {
		s.golden[g.Label] = g
	}
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := ipc.NewServerListener(ln, s)
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	c, err := ipc.Connect(context.Background(), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c
}

// Step runs fn with its requests labelled label (label.2, label.3, ... for
// the second and later).
func (s *Server) Step(label string, fn func()) {
	s.Label(label)
	fn()
}

// Label labels the requests that follow.
func (s *Server) Label(label string) {
	s.mu.Lock()
	s.label = label
	s.mu.Unlock()
}

// ServeCall implements ipc.CallHandler.
func (s *Server) ServeCall(ctx context.Context, req *ipc.Request) (*ipc.Response, error) {
	for _, f := range req.Files {
		f.Close()
	}
	s.mu.Lock()
	label := s.label
	s.n[label]++
	if s.n[label] > 1 {
		label = fmt.Sprintf("%s.%d", label, s.n[label])
	}
	s.recs = append(s.recs, record{label: label, typ: req.Type, files: len(req.Files), req: bytes.Clone(req.Payload)})
	s.mu.Unlock()
	if req.Type == ipc.MsgInstanceWait {
		close(s.Waiting)
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	g, ok := s.golden[label]
	if !ok {
		return nil, fmt.Errorf("no golden answer for %s", label)
	}
	resp := &ipc.Response{Payload: g.Ans}
	if d := ipc.Describe(req.Type); d != nil && d.Hijacks(0) {
		resp.Hijack = func(c net.Conn) { c.Close() }
	}
	return resp, nil
}

// Check compares every request recorded with its golden message, and
// reports golden messages of the given labels that were not sent.
func (s *Server) Check(t testing.TB, want func(label string) bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, x := range s.recs {
		seen[x.label] = true
		g, ok := s.golden[x.label]
		switch {
		case !ok:
			t.Errorf("%s: message 0x%04x %x has no golden", x.label, x.typ, x.req)
		case g.Type != x.typ || g.Files != x.files || !bytes.Equal(g.Req, x.req):
			t.Errorf("%s: sent 0x%04x with %d files:\n  %x\nwant 0x%04x with %d files:\n  %x", x.label, x.typ, x.files, x.req, g.Type, g.Files, g.Req)
		}
	}
	for _, g := range s.list {
		if want(g.Label) && !seen[g.Label] {
			t.Errorf("%s: golden message 0x%04x was not sent", g.Label, g.Type)
		}
	}
}
