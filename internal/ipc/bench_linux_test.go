package ipc

import (
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
)

// Benchmarks come in pairs: "sdk" measures this package, "floor" measures
// the same bytes moved over a plain Unix socket pair in the same run. The
// bench report (scripts/benchratio) prints sdk/floor for each pair.

// benchServer starts a server answering msgEcho and returns a client.
func benchServer(b *testing.B) *Client {
	b.Helper()
	srv, err := Listen(SocketPath(), newTestMux(nil))
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve()
	c, err := ConnectTo(srv.SocketPath())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); srv.Close() })
	return c
}

// rawPair returns a connected Unix socket pair as net.Conns.
func rawPair(b *testing.B) (net.Conn, net.Conn) {
	b.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	c1, err := fileConn(fds[0])
	if err != nil {
		b.Fatal(err)
	}
	c2, err := fileConn(fds[1])
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

// rawEcho answers every request of reqLen bytes with a 7-byte answer (a
// header and a success byte), as the server does for an empty call.
func rawEcho(c net.Conn, reqLen int) {
	req := make([]byte, reqLen)
	resp := []byte{0xff, 0, 0, 0, 0, 1, 0}
	for {
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// rawCall sends req and reads the 7-byte answer.
func rawCall(b *testing.B, c net.Conn, req, resp []byte) {
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, resp); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCallEmpty(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		c := benchServer(b)
		for b.Loop() {
			if _, err := c.Call(msgNoPayload, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		c1, c2 := rawPair(b)
		go rawEcho(c2, HeaderSize)
		req, resp := []byte{0x7f, 0x09, 0, 0, 0, 0}, make([]byte, 7)
		for b.Loop() {
			rawCall(b, c1, req, resp)
		}
	})
}

func BenchmarkCallEmpty100Callers(b *testing.B) {
	const callers = 100
	b.Run("sdk", func(b *testing.B) {
		c := benchServer(b)
		b.SetParallelism((callers + 1) / 2) // 100 goroutines on 2 CPUs
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Call(msgNoPayload, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("floor", func(b *testing.B) {
		// One socket pair per caller: the best a pool can do.
		var mu sync.Mutex
		var pairs []net.Conn
		for range callers + 2 {
			c1, c2 := rawPair(b)
			go rawEcho(c2, HeaderSize)
			pairs = append(pairs, c1)
		}
		b.SetParallelism((callers + 1) / 2)
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			c := pairs[len(pairs)-1]
			pairs = pairs[:len(pairs)-1]
			mu.Unlock()
			req, resp := []byte{0x7f, 0x09, 0, 0, 0, 0}, make([]byte, 7)
			for pb.Next() {
				rawCall(b, c, req, resp)
			}
		})
	})
}

func BenchmarkCall1MiB(b *testing.B) {
	const size = 1 << 20
	payload := make([]byte, size)
	b.Run("sdk", func(b *testing.B) {
		c := benchServer(b)
		b.SetBytes(size)
		ctx := context.Background()
		for b.Loop() {
			if _, err := c.CallContext(ctx, msgNoPayload, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		c1, c2 := rawPair(b)
		go rawEcho(c2, HeaderSize+size)
		req := append([]byte{0x7f, 0x09, 0, 0x10, 0, 0}, payload...)
		resp := make([]byte, 7)
		b.SetBytes(size)
		for b.Loop() {
			rawCall(b, c1, req, resp)
		}
	})
}
