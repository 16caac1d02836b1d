package sandbox

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testdns"
	"golang.org/x/net/dns/dnsmessage"
)

// A fleet test runs three network helpers on this machine as three
// nodes: each in its own network namespace, with its own address on a
// veth pair to this one. The helpers are this test binary re-executed as
// cc-helper serve (helper.EnvMarker). The namespaces are unnamed (made by
// the helper's clone, configured through nsenter), so they leave no bind
// mount under /run/netns that another test's mount count would see, and
// they end with the helper.

const fleetPort = 7443

// node is one helper of a fleet test.
type node struct {
	name       string
	veth       string
	hostIP, ip net.IP
	store      string
	args       []string
	cmd        *exec.Cmd
	netns      string // the helper's network namespace, as /proc/PID/ns/net reads
	waited     chan error
}

func (n *node) addr() string { return net.JoinHostPort(n.ip.String(), fmt.Sprint(fleetPort)) }

func runCmd(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	runCmd(t, "ip", args...)
}

// fleetNet picks the second byte of the test's 10.x.0.0/16 addresses: one
// no address of this host uses yet (the race and helper phases of make
// test may run TestFleet at the same time).
func fleetNet(t testing.TB) int {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr show: %v", err)
	}
	start := os.Getpid() % 100
	for k := range 100 {
		x := 100 + (start+k)%100
		if !strings.Contains(string(out), fmt.Sprintf(" 10.%d.", x)) {
			return x
		}
	}
	t.Fatal("no free 10.x.0.0/16 for the fleet's nodes")
	return 0
}

// newNode describes node i, on 10.net2.i.0/24.
func newNode(t testing.TB, net2, i int) *node {
	pid := os.Getpid()
	n := &node{
		name:   fmt.Sprint("node", i),
		veth:   fmt.Sprintf("cf%d%c", pid%100000, 'a'+i),
		hostIP: net.IPv4(10, byte(net2), byte(i), 1),
		ip:     net.IPv4(10, byte(net2), byte(i), 2),
		store:  t.TempDir(),
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.veth).Run() })
	return n
}

// start runs the node's helper in a network namespace of its own, wired
// to this one, and waits until it listens.
func (n *node) start(t testing.TB) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// sh waits, in the new namespace, until the namespace is wired, then
	// becomes the helper.
	n.cmd = exec.Command("sh", append([]string{"-c", `read ready && exec "$0" "$@"`, exe}, n.args...)...)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	n.cmd.Env = append(os.Environ(), helper.EnvMarker+"=1", "GORACE=atexit_sleep_ms=0")
	n.cmd.Stderr = os.Stderr
	in, err := n.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.waited = make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		lines <- line
		io.Copy(io.Discard, r)
		n.waited <- n.cmd.Wait()
	}()
	nsnet := fmt.Sprintf("/proc/%d/ns/net", n.cmd.Process.Pid)
	n.netns, _ = os.Readlink(nsnet)
	// The last helper's namespace, and with it the old pair, may still be
	// going away.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := exec.Command("ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", fmt.Sprint(n.cmd.Process.Pid)).Run()
		if err == nil {
			break
		}
		exec.Command("ip", "link", "del", n.veth).Run()
		if time.Now().After(end) {
			t.Fatalf("veth %s: %v", n.veth, err)
		}
	}
	ipCmd(t, "addr", "add", n.hostIP.String()+"/24", "dev", n.veth)
	ipCmd(t, "link", "set", n.veth, "up")
	inNS := func(args ...string) { runCmd(t, "nsenter", append([]string{"--net=" + nsnet, "ip"}, args...)...) }
	inNS("addr", "add", n.ip.String()+"/24", "dev", "eth0")
	inNS("link", "set", "eth0", "up")
	inNS("link", "set", "lo", "up")
	inNS("route", "add", "default", "via", n.hostIP.String())
	in.Write([]byte("ready\n"))
	in.Close()
	var line string
	select {
	case line = <-lines:
	case <-time.After(60 * time.Second):
	}
	if !strings.Contains(line, "serving on "+n.addr()) {
		n.cmd.Process.Kill()
		<-n.waited
		t.Fatalf("helper of %s: %q", n.name, line)
	}
}

// stop ends the node's helper with SIGTERM (it stops its sandboxes) and
// waits for it.
func (n *node) stop(t testing.TB) {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.waited:
		if err != nil {
			t.Errorf("helper of %s: %v", n.name, err)
		}
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		<-n.waited
		t.Errorf("helper of %s did not stop on SIGTERM", n.name)
	}
	n.cmd = nil
}

// helperOf returns the address of the helper inst runs on.
func helperOf(inst *Instance) string { return inst.runner.(*helper.NetInstance).Helper() }

// TestFleet is issue 19's Done-when test: three helpers as three nodes
// (network namespaces, certificates made here), a fleet found in DNS
// placing 30 sandboxes on all three, each running a command, a file round
// trip and a Dial; strangers refused before any message is read; a helper
// killed with SIGKILL failing its sandboxes fast (ErrNotRunning) while new
// ones go to the other two; one cut off (its link down) failing its
// sandboxes once the keepalives go unanswered; the killed one used again
// once it is back; nothing left afterwards on either side.
func TestFleet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestFleet needs root to create network namespaces and veth pairs; the race phase of make test runs it as root")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("TestFleet needs %s (iproute2, util-linux): %v", tool, err)
		}
	}
	leakcheck.Check(t)
	sockets := countSockets()
	t.Cleanup(func() { // after everything else but leakcheck's
		left := countSockets()
		for end := time.Now().Add(5 * time.Second); left > sockets && time.Now().Before(end); left = countSockets() {
			time.Sleep(20 * time.Millisecond)
		}
		if left > sockets {
			t.Errorf("sockets: %d before, %d after", sockets, left)
		}
	})
	ctx := context.Background()
	p := newTestPKI(t)
	nodes := make([]*node, 3)
	var ips []net.IP
	net2 := fleetNet(t)
	for i := range nodes {
		nodes[i] = newNode(t, net2, i)
		ips = append(ips, nodes[i].ip)
	}
	for _, n := range nodes {
		n.args = append([]string{"serve", "-listen", n.addr(), "-store", n.store, "-client-grace", "2s", "-max-instances", "20"},
			p.serverFlags(t, n.name, n.ip)...)
		n.start(t)
		defer n.stop(t)
	}
	// On the address of the node that stays up to the end.
	ref := testRegistry(t, net.JoinHostPort(nodes[2].hostIP.String(), "0"))
	dns, err := testdns.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.SetA("helpers.test", ips...)
	fleet, err := FleetFromDNS(ctx, "helpers.test", fleetPort, p.client("tenant-a"), WithResolver(dns.Resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()

	t.Run("refused", func(t *testing.T) { checkRefusals(t, p, nodes[0].addr()) })

	img, err := fleet.Pull(ctx, ref, WithPlainHTTP())
	if err != nil {
		t.Fatal(err)
	}
	// A Dockerfile built here goes to each helper by content.
	b, err := buildDockerfile(t, "FROM busybox\nRUN echo built here > /built\n", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// First, on an empty fleet: placed by free room, ties going round
	// the fleet, they land on each helper (30 started at once may land
	// unevenly, and the next sandboxes go where the room is).
	built := map[string]int{}
	var insts []*Instance
	for range 6 {
		inst, err := fleet.New(ctx, b.snap)
		if err != nil {
			t.Fatalf("a local build on the fleet: %v", err)
		}
		insts = append(insts, inst)
		built[helperOf(inst)]++
		if out, err := inst.Command("cat", "/built").Output(); err != nil || string(out) != "built here\n" {
			t.Errorf("the build's file on %s: %q, %v", helperOf(inst), out, err)
		}
	}
	if len(built) != len(nodes) {
		t.Errorf("6 sandboxes of a local build landed on %v, not on all %d helpers", built, len(nodes))
	}

	thirty := startMany(t, fleet, img, 30)
	insts = append(insts, thirty...)
	perNode := map[string]int{}
	for _, inst := range thirty {
		perNode[helperOf(inst)]++
	}
	t.Logf("30 sandboxes: %v", perNode)
	for _, n := range nodes {
		if perNode[n.addr()] == 0 {
			t.Errorf("no sandbox landed on %s: %v", n.addr(), perNode)
		}
	}

	// Kill one node's helper: its sandboxes fail fast, new ones go to
	// the other two.
	dead := nodes[0]
	dead.cmd.Process.Kill()
	killed := time.Now()
	<-dead.waited
	dead.cmd = nil
	var slowest time.Duration
	defer func() { t.Logf("sandboxes of the killed helper: Done within %v", slowest) }()
	for _, inst := range insts {
		if helperOf(inst) != dead.addr() {
			continue
		}
		select {
		case <-inst.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("sandbox %s: Done did not fire after its helper was killed", inst.ID())
		}
		slowest = max(slowest, time.Since(killed))
		if !errors.Is(inst.Err(), ErrNotRunning) {
			t.Errorf("sandbox %s: Err %v, want ErrNotRunning", inst.ID(), inst.Err())
		}
		if _, err := inst.Command("true").Output(); !errors.Is(err, ErrNotRunning) {
			t.Errorf("sandbox %s: a command after its helper died: %v, want ErrNotRunning", inst.ID(), err)
		}
	}
	for _, inst := range startMany(t, fleet, img, 4) {
		if helperOf(inst) == dead.addr() {
			t.Errorf("a new sandbox went to the killed helper %s", dead.addr())
		}
		insts = append(insts, inst)
	}

	// Cut another node off the network without a word (its link down):
	// its sandboxes fail too, once the keepalives go unanswered, and a
	// connection in one of them that this program is writing to (the
	// sandbox end never reads: every buffer on the way is full) fails
	// with it.
	cut := nodes[1]
	writeErr := make(chan error, 1)
	for _, inst := range insts {
		if helperOf(inst) != cut.addr() {
			continue
		}
		ln, err := inst.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := inst.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		unread, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer unread.Close()
		go func() {
			buf := make([]byte, 1<<20)
			for {
				if _, err := c.Write(buf); err != nil {
					writeErr <- err
					return
				}
			}
		}()
		break
	}
	ipCmd(t, "link", "set", cut.veth, "down")
	cutAt := time.Now()
	for _, inst := range insts {
		if helperOf(inst) != cut.addr() {
			continue
		}
		select {
		case <-inst.Done():
		case <-time.After(60 * time.Second):
			t.Fatalf("sandbox %s: Done did not fire after its helper was cut off", inst.ID())
		}
		if !errors.Is(inst.Err(), ErrNotRunning) {
			t.Errorf("sandbox %s: Err %v, want ErrNotRunning", inst.ID(), inst.Err())
		}
	}
	t.Logf("sandboxes of the cut-off helper: Done within %v", time.Since(cutAt))
	select {
	case <-writeErr:
	case <-time.After(60 * time.Second):
		t.Error("a write to a connection in a sandbox of the cut-off helper still blocked a minute after the cut")
	}
	if inst := startMany(t, fleet, img, 1)[0]; helperOf(inst) != nodes[2].addr() {
		t.Errorf("with one helper killed and one cut off, a sandbox went to %s", helperOf(inst))
	} else {
		insts = append(insts, inst)
	}
	ipCmd(t, "link", "set", cut.veth, "up")

	// The helper comes back (same node, same address): it is used again,
	// being the one with the most room.
	dead.start(t)
	back := startMany(t, fleet, img, 1)[0]
	if helperOf(back) != dead.addr() {
		t.Errorf("the new sandbox went to %s, not to the helper that came back with the most room (%s)", helperOf(back), dead.addr())
	}
	insts = append(insts, back)

	for _, inst := range insts {
		if err := inst.Close(); err != nil && !errors.Is(err, ErrNotRunning) {
			t.Errorf("Close %s: %v", inst.ID(), err)
		}
	}
	fleet.Close()
	for _, n := range nodes {
		n.stop(t)
		if left := processesIn(n.netns); len(left) > 0 {
			t.Errorf("processes left in the network namespace of %s: %v", n.name, left)
		}
	}
	for _, n := range nodes[1:] { // the killed helper could not clean up
		if left, _ := filepath.Glob(filepath.Join(n.store, "instances", "*")); len(left) > 0 {
			t.Errorf("instance state left in %s: %v", n.store, left)
		}
	}
}

// startMany starts n sandboxes through fleet, a few at a time, and runs a
// command, a file round trip and a Dial in each.
func startMany(t *testing.T, fleet *Fleet, img *Image, n int) []*Instance {
	t.Helper()
	out := make([]*Instance, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 6)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = fleet.New(context.Background(), img)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, inst := range out {
				if inst != nil {
					inst.Close()
				}
			}
			t.Fatal(err)
		}
	}
	for _, inst := range out {
		exercise(t, inst)
	}
	return out
}

// checkRefusals: a client with a certificate of another CA, one without a
// certificate, and one speaking plaintext are refused before the helper
// reads a message from them (its counters: refused connections up by
// three, messages decoded up only by the capacity call asking).
func checkRefusals(t *testing.T, p *testPKI, addr string) {
	ctx := context.Background()
	r, err := DialRemote(ctx, addr, p.client("auditor"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := r.nc.Capacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stranger := p.other.Issue("tenant-a", nil, nil).ClientConfig(p.ca, "helpers.test")
	if _, err := DialRemote(ctx, addr, stranger); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
	noCert := &tls.Config{RootCAs: p.ca.Pool(), ServerName: "helpers.test"}
	if _, err := DialRemote(ctx, addr, noCert); err == nil {
		t.Error("a client without a certificate was accepted")
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hello := (&ipc.Encoder{})
	(&ipc.HelloReq{Magic: ipc.HelloMagic, Version: ipc.ProtocolVersion}).Encode(hello)
	frame := binary.BigEndian.AppendUint16(nil, ipc.MsgHello)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(hello.Bytes())))
	conn.Write(append(frame, hello.Bytes()...))
	conn.SetReadDeadline(time.Now().Add(helper.HandshakeTimeout + 5*time.Second))
	if h, err := ipc.ReadHeader(conn); err == nil && h.Type == ipc.MsgResponse {
		t.Error("a plaintext hello was answered")
	}
	conn.Close()
	after, err := r.nc.Capacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Refused != before.Refused+3 {
		t.Errorf("refused connections: %d, then %d; want 3 more", before.Refused, after.Refused)
	}
	if after.Messages != before.Messages+1 {
		t.Errorf("messages decoded: %d, then %d; want only the capacity call's", before.Messages, after.Messages)
	}
}

// countSockets returns how many sockets this process has open.
func countSockets() int {
	fds, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// processesIn returns the pids of the processes in network namespace ns
// (as /proc/PID/ns/net reads).
func processesIn(ns string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && l == ns {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// dnsFleet returns a fleet as FleetFromDNS makes one, for tenant-a, with
// no members and no refresh: a test gives it members with update.
func dnsFleet(p *testPKI) *Fleet {
	return &Fleet{dns: &fleetDNS{name: "helpers.test", tls: p.client("tenant-a"), done: make(chan struct{})}}
}

// TestFleetDNSBounded: what DNS lists cannot make a fleet grow without end
// or dial without end: it takes the first maxFleetHelpers helpers listed,
// drops those no longer listed that it never dialed, and a helper that
// could not be dialed is not dialed again on the next New (nor the reasons
// of a failed New listed one by one past maxReasons). The "helpers" here
// are loopback addresses where a listener takes connections and closes
// them, so that every TLS handshake fails.
func TestFleetDNSBounded(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted sync.WaitGroup
	var mu sync.Mutex
	dials := 0
	accepted.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			dials++
			mu.Unlock()
			c.Close()
		}
	})
	defer accepted.Wait()
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	addrs := func(first, n int) []string {
		var out []string
		for i := first; i < first+n; i++ {
			out = append(out, net.JoinHostPort(fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), fmt.Sprint(port)))
		}
		slices.Sort(out)
		return out
	}
	f := dnsFleet(newTestPKI(t))
	defer f.Close()
	f.update(addrs(0, 3000))
	if n := len(f.snapshot()); n != maxFleetHelpers {
		t.Fatalf("%d members from 3000 addresses, want %d", n, maxFleetHelpers)
	}
	f.update(addrs(5000, 10)) // all new: the others were never dialed
	if n := len(f.snapshot()); n != 10 {
		t.Fatalf("%d members after DNS listed 10 others, want 10", n)
	}
	f.update(addrs(0, 200))
	_, err = f.New(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("and %d more", 200-maxReasons)) {
		t.Errorf("New on a fleet of 200 unreachable helpers: %.300v", err)
	}
	mu.Lock()
	first := dials
	mu.Unlock()
	if first != 200 {
		t.Errorf("the first New dialed %d helpers, want 200", first)
	}
	if _, err := f.New(context.Background(), nil); err == nil {
		t.Error("New on unreachable helpers succeeded")
	}
	mu.Lock()
	again := dials - first
	mu.Unlock()
	if again != 0 {
		t.Errorf("the next New dialed %d helpers that had just failed, want 0", again)
	}
}

// TestFleetDNSHostileAnswer: DNS that a hostile party answers lists as
// many SRV targets as a message holds (about 1700), and gives each target
// as many addresses as a message holds (about 4000), over TCP after a
// truncated UDP answer. A lookup resolved every target and kept every
// address before the fleet cut them to maxFleetHelpers: millions of
// addresses, for as long as its context lasted. It must resolve at most
// maxFleetHelpers targets and keep at most maxFleetHelpers addresses.
func TestFleetDNSHostileAnswer(t *testing.T) {
	h := startHostileDNS(t)
	d := &fleetDNS{name: "helpers.test", resolver: h.resolver()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a refresh's context (every)
	defer cancel()
	addrs, err := d.lookup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	targets := h.targets()
	if len(addrs) > maxFleetHelpers || targets > maxFleetHelpers {
		t.Errorf("one lookup resolved %d SRV targets and kept %d addresses, want at most %d of each", targets, len(addrs), maxFleetHelpers)
	}
}

// hostileDNS answers every question with as many records as a message
// holds: over UDP truncated (so that the resolver asks again over TCP),
// over TCP SRV records naming distinct targets, or A records. It counts
// the targets asked for over TCP.
type hostileDNS struct {
	udp net.PacketConn
	tcp net.Listener

	mu    sync.Mutex
	asked map[string]bool // guarded by mu: the names asked for over TCP
}

// startHostileDNS starts a hostileDNS on loopback; it stops with t.
func startHostileDNS(t *testing.T) *hostileDNS {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", tcp.Addr().String())
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	h := &hostileDNS{udp: udp, tcp: tcp, asked: map[string]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { udp.Close(); tcp.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			udp.WriteTo(h.answer(buf[:n], true), from)
		}
	})
	wg.Go(func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				for {
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					out := h.answer(q, false)
					binary.BigEndian.PutUint16(l[:], uint16(len(out)))
					if _, err := c.Write(append(l[:], out...)); err != nil {
						return
					}
				}
			})
		}
	})
	return h
}

// resolver returns a resolver that asks only h.
func (h *hostileDNS) resolver() *net.Resolver {
	addr := h.tcp.Addr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// targets returns how many SRV targets (names other than helpers.test)
// were asked for over TCP.
func (h *hostileDNS) targets() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for name := range h.asked {
		if name != "helpers.test." {
			n++
		}
	}
	return n
}

// answer answers the question q: truncated and empty, or full.
func (h *hostileDNS) answer(q []byte, truncated bool) []byte {
	var p dnsmessage.Parser
	hd, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hd.ID, Response: true, Authoritative: true, Truncated: truncated})
	b.EnableCompression()
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	if !truncated {
		h.mu.Lock()
		h.asked[question.Name.String()] = true
		h.mu.Unlock()
		rh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET}
		const room = 65000 // what a message over TCP holds, about
		size := 12 + len(question.Name.String()) + 6
		switch question.Type {
		case dnsmessage.TypeSRV:
			for i := 0; ; i++ {
				target := dnsmessage.MustNewName(fmt.Sprintf("t%d.helpers.test.", i))
				if size += 2 + 10 + 6 + len(target.String()) + 1; size > room {
					break
				}
				b.SRVResource(rh, dnsmessage.SRVResource{Priority: 1, Weight: 1, Port: 9, Target: target})
			}
		case dnsmessage.TypeA:
			for i := 0; ; i++ {
				if size += 16; size > room {
					break
				}
				b.AResource(rh, dnsmessage.AResource{A: [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}})
			}
		}
	}
	out, _ := b.Finish()
	return out
}

// TestFleetDNSLeaving: a helper DNS no longer lists takes no new
// sandbox; while one of its sandboxes runs it stays a member (its
// sandboxes go on), and once none runs it is closed and dropped, so that
// a fleet whose helpers roll (or DNS that rotates them) does not keep a
// connection to every helper it ever dialed.
func TestFleetDNSLeaving(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s := startNetHelper(t, p)
	f := dnsFleet(p)
	defer f.Close()
	ref := testRegistry(t, "127.0.0.1:0")
	f.update([]string{s.Addr().String()})
	img, err := f.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := f.New(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	f.update(nil)
	if _, err := f.New(ctx, img); err == nil || !strings.Contains(err.Error(), "no longer in the fleet") {
		t.Errorf("New once the only helper left DNS: %v", err)
	}
	if n := len(f.snapshot()); n != 1 {
		t.Errorf("%d members while the helper that left runs a sandbox, want 1", n)
	}
	if out, err := inst.Command("echo", "on").Output(); err != nil || string(out) != "on\n" {
		t.Errorf("a sandbox of a helper that left: %q, %v", out, err)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	r := f.snapshot()[0].remote
	f.update(nil)
	if n := len(f.snapshot()); n != 0 {
		t.Errorf("%d members once the helper that left runs nothing, want 0", n)
	}
	f.dns.wg.Wait() // its Remote is closing
	if _, err := r.Capacity(ctx); err == nil {
		t.Error("the Remote of a helper dropped from the fleet is still open")
	}
}

// TestFleetClosed: once a fleet is closed, it dials no helper, not even
// one it never dialed, so that no Remote (nor a sandbox on it) outlives
// it; its calls say it is closed.
func TestFleetClosed(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s := startNetHelper(t, p)
	f := dnsFleet(p)
	f.update([]string{s.Addr().String()}) // not dialed yet
	m := f.snapshot()[0]
	f.Close()
	if _, err := f.Pull(ctx, "127.0.0.1:1/none"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Pull on a closed fleet: %v", err)
	}
	if _, err := f.New(ctx, nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("New on a closed fleet: %v", err)
	}
	if r, err := f.dial(ctx, m); err == nil {
		r.Close()
		t.Error("a closed fleet dialed a helper")
	}
}

// TestFleetCloseRacesNew: a fleet closed while a New is under way (on a
// helper dialed already or not) gives that New an error or a sandbox it
// then closes, never a panic nor a sandbox left running: Close may land
// anywhere in the start, including between the helper's answer and the
// client taking the sandbox in.
func TestFleetCloseRacesNew(t *testing.T) {
	ctx := context.Background()
	p := newTestPKI(t)
	s := startNetHelper(t, p)
	ref := testRegistry(t, "127.0.0.1:0")
	fleet := func() *Fleet {
		f := dnsFleet(p)
		f.update([]string{s.Addr().String()})
		return f
	}
	f := fleet()
	img, err := f.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for i := range 20 {
		f := fleet()
		if i%2 == 1 {
			if _, err := f.dial(ctx, f.snapshot()[0]); err != nil {
				t.Fatal(err)
			}
		}
		started := make(chan *Instance, 1)
		go func() {
			inst, _ := f.New(ctx, img)
			started <- inst
		}()
		time.Sleep(time.Duration(i%10) * 5 * time.Millisecond) // Close lands at a different point each time
		f.Close()
		if inst := <-started; inst != nil {
			if err := inst.Command("true").Run(); err == nil {
				t.Errorf("round %d: New gave a sandbox that still runs after the fleet's Close", i)
			}
			inst.Close()
		}
	}
}
