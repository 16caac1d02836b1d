package netutil

import (
	"io"
	"net"
	"testing"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// TestSplice: data crosses both ways, a half-close reaches the far side
// while the answer still comes back, and Splice returns once both
// directions are done.
func TestSplice(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	defer client.Close()
	defer server.Close()
	spliced := make(chan struct{})
	go func() { Splice(a, b); close(spliced) }()

	if _, err := client.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(server) // ends only if the half-close came through
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v", got, err)
	}
	if _, err := server.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	server.Close()
	got, err = io.ReadAll(client)
	if err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v", got, err)
	}
	<-spliced
}

// TestSpliceClose: closing one end while the other is idle ends the
// splice and closes the far side.
func TestSpliceClose(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	defer server.Close()
	spliced := make(chan struct{})
	go func() { Splice(a, b); close(spliced) }()
	client.Close()
	if _, err := io.ReadAll(server); err != nil {
		t.Fatalf("server: %v", err)
	}
	server.Close()
	<-spliced
}
