package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The egress stack against code in the sandbox that opens flows as fast
// as it can and forgets them: each flow holds host descriptors,
// goroutines and buffers the sandbox's own limits do not count.

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestEgressFlowsBounded: a sandbox sends one datagram from each of 4000
// sockets it closes at once, then opens 1000 connections to a server
// that never answers and closes them. The host holds at most the stack's
// bound of flows for it (a few goroutines and one descriptor each), not
// one per datagram or connection, and another sandbox's egress works
// throughout.
func TestEgressFlowsBounded(t *testing.T) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // waits for a request that never comes
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	toSinks := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if network == "udp" {
			return d.DialContext(ctx, network, sink.LocalAddr().String())
		}
		return d.DialContext(ctx, network, silent.Addr().String())
	}
	addr, hits := hostServer(t)
	_, port, _ := net.SplitHostPort(addr)
	victim := egressInstance(t, WithDialer(rewrite(addr, DefaultDialer(netip.MustParsePrefix("127.0.0.1/32")))))
	attacker := egressInstance(t, WithDialer(toSinks))
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	script := `
import socket
for i in range(4000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("192.0.2.10", 9))
    s.close()
refused = 0
for i in range(1000):
    try:
        s = socket.create_connection(("192.0.2.10", 80), timeout=10)
        s.close()
    except OSError:
        refused += 1
print(refused)
`
	out, err := attacker.Command("python3", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	grewG, grewFD := runtime.NumGoroutine()-goroutines, openFDs(t)-fds
	mu.Lock()
	accepted := len(held)
	mu.Unlock()
	t.Logf("after 4000 datagrams and 1000 connections (%s refused): host goroutines +%d, descriptors +%d; the silent server holds %d",
		out[:len(out)-1], grewG, grewFD, accepted)
	// Each UDP flow holds 3 goroutines and 1 descriptor, each TCP flow 3
	// and 1 (plus the test server's end of it).
	if most := 3*(256+256) + 50; grewG > most {
		t.Errorf("the host holds %d more goroutines for one sandbox's forgotten flows; at most %d hold the bound", grewG, most)
	}
	if most := 256 + 2*256 + 50; grewFD > most {
		t.Errorf("the host holds %d more descriptors for one sandbox's forgotten flows; at most %d hold the bound", grewFD, most)
	}
	if got := run(t, victim, "wget -q -O - http://192.0.2.10:"+port+"/"); got != "hello from the host" || hits.Load() != 1 {
		t.Errorf("another sandbox's fetch: %q, %d requests", got, hits.Load())
	}
}

// TestEgressHostOwnAddress: a service of the host on one of its own
// addresses (not loopback; on 0.0.0.0 alike) is the host as much as its
// loopback: the default dialer refuses it.
func TestEgressHostOwnAddress(t *testing.T) {
	var host netip.Addr
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			host = p.Addr()
			break
		}
	}
	if !host.IsValid() {
		t.Skip("this host has no IPv4 address but loopback")
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(host, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "the host's own service")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	inst := egressInstance(t)
	out, err := inst.Command("wget", "-q", "-O", "-", "http://"+ln.Addr().String()+"/").CombinedOutput()
	if hits.Load() != 0 || err == nil {
		t.Errorf("the default dialer let the sandbox reach the host at %v: %q, %v", host, out, err)
	}
	// Allowed on purpose, it is reached.
	allowed := egressInstance(t, WithDialer(DefaultDialer(netip.PrefixFrom(host, 32))))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err = allowed.CommandContext(ctx, "wget", "-q", "-O", "-", "http://"+ln.Addr().String()+"/").CombinedOutput()
	if err != nil || string(out) != "the host's own service" {
		t.Errorf("allowed %v: %q, %v", host, out, err)
	}
}
