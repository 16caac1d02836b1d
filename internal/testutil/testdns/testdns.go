// Package testdns is a tiny DNS server on loopback for tests of DNS
// discovery (FleetFromDNS): it answers A and SRV questions for the names
// a test sets, and a resolver that asks only it.
package testdns

import (
	"context"
	"net"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers over UDP on 127.0.0.1.
type Server struct {
	pc   net.PacketConn
	mu   sync.Mutex
	a    map[string][]net.IP                 // guarded by mu; by lower-case FQDN
	srv  map[string][]dnsmessage.SRVResource // guarded by mu
	done chan struct{}
}

// Start starts a server; Close stops it.
func Start() (*Server, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{pc: pc, a: map[string][]net.IP{}, srv: map[string][]dnsmessage.SRVResource{}, done: make(chan struct{})}
	go s.serve()
	return s, nil
}

func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// SetA makes name resolve to ips (IPv4), replacing what it had.
func (s *Server) SetA(name string, ips ...net.IP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a[fqdn(name)] = ips
}

// SetSRV makes name's SRV records target:port pairs.
func (s *Server) SetSRV(name string, targets []string, ports []uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rs []dnsmessage.SRVResource
	for i, t := range targets {
		rs = append(rs, dnsmessage.SRVResource{Priority: 10, Weight: 10, Port: ports[i], Target: dnsmessage.MustNewName(fqdn(t))})
	}
	s.srv[fqdn(name)] = rs
}

// Resolver returns a resolver that asks only this server.
func (s *Server) Resolver() *net.Resolver {
	addr := s.pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// Close stops the server.
func (s *Server) Close() error {
	err := s.pc.Close()
	<-s.done
	return err
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out, err := s.answer(buf[:n]); err == nil {
			s.pc.WriteTo(out, from)
		}
	}
}

func (s *Server) answer(q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) == 0 {
		return nil, err
	}
	question := qs[0]
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
	b.EnableCompression()
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	name := strings.ToLower(question.Name.String())
	rh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 1}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch question.Type {
	case dnsmessage.TypeA:
		for _, ip := range s.a[name] {
			var a dnsmessage.AResource
			copy(a.A[:], ip.To4())
			b.AResource(rh, a)
		}
	case dnsmessage.TypeSRV:
		for _, r := range s.srv[name] {
			b.SRVResource(rh, r)
		}
	}
	return b.Finish()
}
