package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// netModes are the ways the network tests run: both I/O paths of the
// namespace backend, and the VM backend (streamed: its connections carry
// no descriptors).
var netModes = append(ioModes[:len(ioModes):len(ioModes)], struct {
	name string
	opts []Option
}{"vm", []Option{WithBackend(BackendVM)}})

// TestNetConn runs golang.org/x/net/nettest.TestConn over connection pairs
// made in a sandbox: one end dialed from inside with Dial, the other
// accepted from a listener inside with Listen; on both I/O paths.
func TestNetConn(t *testing.T) {
	for _, mode := range netModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				ln, err := inst.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return nil, nil, nil, err
				}
				defer ln.Close()
				accepted := make(chan net.Conn, 1)
				go func() {
					c, _ := ln.Accept()
					accepted <- c
				}()
				c1, err = inst.Dial("tcp", ln.Addr().String())
				if err != nil {
					return nil, nil, nil, err
				}
				c2 = <-accepted
				if c2 == nil {
					c1.Close()
					return nil, nil, nil, errors.New("accept failed")
				}
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}

func TestListener(t *testing.T) {
	for _, mode := range netModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			ln, err := inst.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			if !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("Addr %q", addr)
			}
			// Close unblocks a pending Accept with net.ErrClosed.
			acceptErr := make(chan error, 1)
			go func() {
				_, err := ln.Accept()
				acceptErr <- err
			}()
			time.Sleep(20 * time.Millisecond) // let Accept block; the test holds either way
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			err = <-acceptErr
			var oe *net.OpError
			if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) {
				t.Fatalf("Accept after Close: %v", err)
			}
			if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Accept after Close: %v", err)
			}
			// The address can be reused.
			ln2, err := inst.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listening again on %s: %v", addr, err)
			}
			ln2.Close()
			// Nothing listens: dialing fails at once.
			if _, err := inst.Dial("tcp", addr); !errors.As(err, &oe) || oe.Op != "dial" {
				t.Errorf("dial to a closed port: %v", err)
			}
			// Errors are *net.OpError.
			if _, err := inst.Listen("tcp", "256.0.0.1:1"); !errors.As(err, &oe) {
				t.Errorf("bad listen address: %v", err)
			}
			if _, err := inst.Listen("carrier-pigeon", "x"); !errors.As(err, &oe) {
				t.Errorf("unknown network: %v", err)
			}
		})
	}
}

// TestHTTPBothWays: a net/http server on inst.Listen answers a client run
// inside the sandbox, and an http.Client dialing with inst.DialContext
// fetches from a server run inside the sandbox.
func TestHTTPBothWays(t *testing.T) {
	for _, mode := range netModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			ln, err := inst.Listen("tcp", "127.0.0.1:8080")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "served to the sandbox: %s", r.URL.Path)
			})}
			go srv.Serve(ln)
			out := run(t, inst, "busybox wget -q -O - http://127.0.0.1:8080/hello")
			if out != "served to the sandbox: /hello" {
				t.Errorf("client in the sandbox got %q", out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}

			// A server in the sandbox, reached from the host.
			if err := inst.MkdirAll("/www", 0o755); err != nil {
				t.Fatal(err)
			}
			inst.WriteFile("/www/index.html", []byte("from inside"), 0o644)
			httpd := inst.Command("busybox", "httpd", "-f", "-p", "127.0.0.1:8081", "-h", "/www")
			if err := httpd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { httpd.Process.Kill(); httpd.Wait() }()
			client := &http.Client{Transport: &http.Transport{DialContext: inst.DialContext}}
			defer client.CloseIdleConnections()
			var body []byte
			for deadline := time.Now().Add(10 * time.Second); ; {
				resp, err := client.Get("http://127.0.0.1:8081/index.html")
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("fetching from the sandbox: %v", err)
				}
				time.Sleep(20 * time.Millisecond) // httpd starting
			}
			if string(body) != "from inside" {
				t.Errorf("fetched %q", body)
			}
		})
	}
}

func TestPacketAndUnix(t *testing.T) {
	for _, mode := range netModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			pc, err := inst.ListenPacket("udp", "127.0.0.1:9999")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			if out, err := inst.Command("bash", "-c", "echo datagram > /dev/udp/127.0.0.1/9999").CombinedOutput(); err != nil {
				t.Fatalf("sending a datagram: %v %s", err, out)
			}
			pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 100)
			n, from, err := pc.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "datagram\n" {
				t.Fatalf("ReadFrom: %q from %v: %v", buf[:n], from, err)
			}
			if !strings.HasPrefix(from.String(), "127.0.0.1:") {
				t.Errorf("from %v", from)
			}
			// A unix socket at a path inside the sandbox.
			ln, err := inst.Listen("unix", "/tmp/app.sock")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if fi, err := inst.Lstat("/tmp/app.sock"); err != nil || fi.Mode()&fs.ModeSocket == 0 {
				t.Errorf("socket file in the sandbox: %v %v", fi, err)
			}
			go func() {
				c, err := ln.Accept()
				if err == nil {
					io.Copy(c, c)
					c.Close()
				}
			}()
			c, err := inst.Dial("unix", "/tmp/app.sock")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("ping"))
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte("ping")) {
				t.Errorf("unix echo: %q %v", got, err)
			}
		})
	}
}

func TestExposeForward(t *testing.T) {
	for _, mode := range netModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			// An echo server in the sandbox, exposed on a host port.
			echo := inst.Command("busybox", "nc", "-ll", "-p", "7000", "-e", "cat")
			if err := echo.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { echo.Process.Kill(); echo.Wait() }()
			hostLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			exp, err := inst.Expose("tcp", "127.0.0.1:7000", hostLn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { exp.Close() })
			var c net.Conn
			var reply []byte
			for deadline := time.Now().Add(10 * time.Second); ; {
				c, err = net.Dial("tcp", hostLn.Addr().String())
				if err == nil {
					c.Write([]byte("through expose\n"))
					c.SetReadDeadline(time.Now().Add(time.Second))
					reply = make([]byte, 15)
					_, err = io.ReadFull(c, reply)
					if err == nil {
						break
					}
					c.Close()
				}
				if time.Now().After(deadline) {
					t.Fatalf("expose: %v", err)
				}
				time.Sleep(20 * time.Millisecond) // nc starting
			}
			if string(reply) != "through expose\n" {
				t.Errorf("reply %q", reply)
			}
			if err := exp.Close(); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Error("a connection survived the Expose's Close")
			}
			c.Close()

			// A host server, reachable from the sandbox through Forward.
			host, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer host.Close()
			go func() {
				for {
					c, err := host.Accept()
					if err != nil {
						return
					}
					go func() { c.Write([]byte("hello from the host\n")); c.Close() }()
				}
			}()
			sandboxLn, err := inst.Listen("tcp", "127.0.0.1:7100")
			if err != nil {
				t.Fatal(err)
			}
			fwd, err := inst.Forward(sandboxLn, "tcp", host.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fwd.Close() })
			if out := run(t, inst, "busybox nc 127.0.0.1 7100 </dev/null"); out != "hello from the host\n" {
				t.Errorf("through forward: %q", out)
			}
			if err := fwd.Close(); err != nil {
				t.Fatal(err)
			}
			if out, err := inst.Command("busybox", "nc", "127.0.0.1", "7100").CombinedOutput(); err == nil && len(out) > 0 {
				t.Errorf("forwarding continued after Close: %q", out)
			}
		})
	}
}
