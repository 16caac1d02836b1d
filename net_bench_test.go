package sandbox

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"testing"
)

const transferSize = 1 << 30

// transfer writes n bytes on w and reads them on r.
func transfer(b *testing.B, w, r net.Conn, n int64) {
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, r, n)
		done <- err
	}()
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		k := min(int64(len(buf)), left)
		if _, err := w.Write(buf[:k]); err != nil {
			b.Fatal(err)
		}
		left -= k
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// sandboxPair returns two connected ends of a TCP connection inside inst.
func sandboxPair(b *testing.B, inst *Instance) (net.Conn, net.Conn) {
	ln, err := inst.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	c1, err := inst.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return c1, <-acc
}

// BenchmarkConnTransfer1GB: 1 GiB through a connection made in a sandbox
// (Dial to a Listen), beside the same over plain host loopback TCP.
func BenchmarkConnTransfer1GB(b *testing.B) {
	for _, mode := range ioModes {
		name := "sdk"
		if mode.name != "descriptors" {
			name = "streamed"
		}
		b.Run(name, func(b *testing.B) {
			inst := hostInstance(b, mode.opts...)
			c1, c2 := sandboxPair(b, inst)
			defer c1.Close()
			defer c2.Close()
			b.SetBytes(transferSize)
			for b.Loop() {
				transfer(b, c1, c2, transferSize)
			}
		})
	}
	b.Run("floor", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		acc := make(chan net.Conn, 1)
		go func() { c, _ := ln.Accept(); acc <- c }()
		c1, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c2 := <-acc
		defer c1.Close()
		defer c2.Close()
		b.SetBytes(transferSize)
		for b.Loop() {
			transfer(b, c1, c2, transferSize)
		}
	})
}

// BenchmarkConnSetup: Dial, Accept and Close of a connection in a sandbox,
// beside the same on the host's loopback.
func BenchmarkConnSetup(b *testing.B) {
	setup := func(b *testing.B, listen func() (net.Listener, error), dial func(string) (net.Conn, error)) {
		ln, err := listen()
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		addr := ln.Addr().String()
		for b.Loop() {
			c, err := dial(addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	}
	b.Run("sdk", func(b *testing.B) {
		inst := hostInstance(b)
		setup(b, func() (net.Listener, error) { return inst.Listen("tcp", "127.0.0.1:0") },
			func(a string) (net.Conn, error) { return inst.Dial("tcp", a) })
	})
	b.Run("floor", func(b *testing.B) {
		setup(b, func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
			func(a string) (net.Conn, error) { return net.Dial("tcp", a) })
	})
}

const downloadSize = 256 << 20

// BenchmarkEgressDownload: a 256 MiB HTTP download by busybox wget inside a
// sandbox, through egress, from a server on the host; beside the same wget
// run on the host.
func BenchmarkEgressDownload(b *testing.B) {
	payload := make([]byte, downloadSize)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(payload)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	b.Run("sdk", func(b *testing.B) {
		inst := hostInstance(b, WithNetwork(), WithDialer(rewrite(addr, DefaultDialer(netip.MustParsePrefix("127.0.0.1/32")))))
		b.SetBytes(downloadSize)
		for b.Loop() {
			if out, err := inst.Command("busybox", "wget", "-q", "-O", "/dev/null", "http://192.0.2.10:"+port+"/").CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		b.SetBytes(downloadSize)
		for b.Loop() {
			if out, err := exec.Command("busybox", "wget", "-q", "-O", "/dev/null", "http://"+addr+"/").CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
	_ = context.Background
}
