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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testdns"
)

// A fleet test runs three network helpers on this machine as three
// nodes: each in its own network namespace, with its own address on a
// veth pair to this one. The helpers are this test binary re-executed as
// cc-helper serve (helper.EnvMarker).

const fleetPort = 7443

// node is one helper of a fleet test.
type node struct {
	ns, veth   string
	hostIP, ip net.IP
	store      string
	args       []string
	cmd        *exec.Cmd
	waited     chan error
}

func (n *node) addr() string { return net.JoinHostPort(n.ip.String(), fmt.Sprint(fleetPort)) }

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNode makes network namespace i with a veth pair to this one.
func newNode(t testing.TB, i int) *node {
	pid := os.Getpid()
	net2 := 100 + pid%100
	n := &node{
		ns:     fmt.Sprintf("ccfleet-%d-%d", pid, i),
		veth:   fmt.Sprintf("cf%d%c", pid%100000, 'a'+i),
		hostIP: net.IPv4(10, byte(net2), byte(i), 1),
		ip:     net.IPv4(10, byte(net2), byte(i), 2),
		store:  t.TempDir(),
	}
	ipCmd(t, "netns", "add", n.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.ns).Run() })
	ipCmd(t, "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.veth).Run() })
	ipCmd(t, "addr", "add", n.hostIP.String()+"/24", "dev", n.veth)
	ipCmd(t, "link", "set", n.veth, "up")
	ipCmd(t, "-n", n.ns, "addr", "add", n.ip.String()+"/24", "dev", "eth0")
	ipCmd(t, "-n", n.ns, "link", "set", "eth0", "up")
	ipCmd(t, "-n", n.ns, "link", "set", "lo", "up")
	ipCmd(t, "-n", n.ns, "route", "add", "default", "via", n.hostIP.String())
	return n
}

// start runs the node's helper and waits until it listens.
func (n *node) start(t testing.TB) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command("ip", append([]string{"netns", "exec", n.ns, exe}, n.args...)...)
	n.cmd.Env = append(os.Environ(), helper.EnvMarker+"=1", "GORACE=atexit_sleep_ms=0")
	n.cmd.Stderr = os.Stderr
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.waited = make(chan error, 1)
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { io.Copy(io.Discard, out); n.waited <- n.cmd.Wait() }()
	if err != nil || !strings.Contains(line, "serving on "+n.addr()) {
		n.cmd.Process.Kill()
		<-n.waited
		t.Fatalf("helper in %s: %q, %v", n.ns, line, err)
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
			t.Errorf("helper in %s: %v", n.ns, err)
		}
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		<-n.waited
		t.Errorf("helper in %s did not stop on SIGTERM", n.ns)
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
		t.Skip("TestFleet needs root to create network namespaces (ip netns); the race phase of make test runs it as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("TestFleet needs iproute2's ip: %v", err)
	}
	// The first network namespace mounts /run/netns for good: make it
	// before counting mounts.
	probe := fmt.Sprintf("ccfleet-%d-probe", os.Getpid())
	ipCmd(t, "netns", "add", probe)
	ipCmd(t, "netns", "del", probe)
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
	for i := range nodes {
		nodes[i] = newNode(t, i)
		ips = append(ips, nodes[i].ip)
	}
	ref := testRegistry(t, net.JoinHostPort(nodes[0].hostIP.String(), "0"))
	for i, n := range nodes {
		n.args = append([]string{"serve", "-listen", n.addr(), "-store", n.store, "-client-grace", "2s", "-max-instances", "20"},
			p.serverFlags(t, fmt.Sprint("node", i), n.ip)...)
		n.start(t)
		defer n.stop(t)
	}
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
	insts := startMany(t, fleet, img, 30)
	perNode := map[string]int{}
	for _, inst := range insts {
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
	// its sandboxes fail too, once the keepalives go unanswered.
	cut := nodes[1]
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
		if out, _ := exec.Command("ip", "netns", "pids", n.ns).Output(); len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("processes left in %s: %s", n.ns, out)
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
