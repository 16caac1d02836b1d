package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// remoteEgressFixture is a network helper in this process, a client of it
// and one sandbox there (with opts), for the egress relay's hostile cases.
// It skips where this host keeps /dev/net/tun from this user
// (TestEgressRemote checks the error there).
type remoteEgressFixture struct {
	s    *helper.NetServer
	p    *testPKI
	r    *Remote
	img  *Image
	inst *Instance
}

func newRemoteEgressFixture(t *testing.T, opts ...Option) *remoteEgressFixture {
	t.Helper()
	if os.Geteuid() != 0 && !tunUsable() && os.Getenv("CC_BACKEND") != string(BackendGVisor) {
		t.Skip("this host keeps /dev/net/tun from unprivileged users (TestEgressRemote checks the error)")
	}
	f := &remoteEgressFixture{}
	f.s, f.p, f.r, f.img = remoteClient(t)
	var err error
	if f.inst, err = f.r.New(context.Background(), f.img, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.inst.Close() })
	return f
}

// attached opens a raw connection of the client's, attached to the sandbox.
func (f *remoteEgressFixture) attached(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", f.s.Addr().String(), f.p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	id := f.inst.runner.(*helper.NetInstance).ID()
	if err := ipc.CallOn(c, ipc.MsgRemoteAttach, &ipc.InstanceAttachReq{ID: id}, &ipc.Empty{}); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// sendTap writes a MsgRemoteTap request for ifname on c, reading nothing.
func sendTap(t *testing.T, c net.Conn, ifname string) {
	t.Helper()
	var e ipc.Encoder
	(&ipc.NetworkReq{Enabled: true, Ifname: ifname, Addr: "10.0.2.15/24", Gateway: "10.0.2.2", MTU: 1500}).Encode(&e)
	var b bytes.Buffer
	ipc.WriteHeader(&b, ipc.Header{Type: ipc.MsgRemoteTap, Length: uint32(len(e.Bytes()))})
	b.Write(e.Bytes())
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// linksSettle waits until the sandbox's interfaces are want, up to a bound
// far above what the helper needs (a device left to the garbage collector
// outlived it by minutes), and returns the last list.
func linksSettle(t *testing.T, inst *Instance, want string) string {
	t.Helper()
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out = run(t, inst, listLinks); out == want {
			break
		}
	}
	return out
}

// TestEgressRemoteHangup: a client that asks for the egress device and
// hangs up at once, before, during or after the helper creates it, leaves
// no device behind: the helper ends the relay of an answer it could not
// send, so the name is free for the next one.
func TestEgressRemoteHangup(t *testing.T) {
	f := newRemoteEgressFixture(t)
	// No collection meanwhile: a device dropped rather than closed would
	// otherwise go when the collector finalizes its file, hiding the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for i := range 60 {
		c := f.attached(t)
		sendTap(t, c, "eth0")
		time.Sleep(time.Duration(i%20) * 100 * time.Microsecond)
		c.Close()
		if out := linksSettle(t, f.inst, "lo\n"); out != "lo\n" {
			t.Fatalf("attempt %d: the sandbox's interfaces after a hung-up MsgRemoteTap: %q", i, out)
		}
	}
	if err := f.inst.SetNetworkEnabled(true); err != nil {
		t.Errorf("egress after the hung-up requests: %v", err)
	}
}

// TestEgressRemoteOneRelay: a client asking again and again for devices of
// other names gets one at a time: each new relay ends the last and its
// device, so nothing piles up in the sandbox or the helper.
func TestEgressRemoteOneRelay(t *testing.T) {
	f := newRemoteEgressFixture(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 20 {
		c := f.attached(t)
		conns = append(conns, c)
		sendTap(t, c, fmt.Sprintf("t%d", i))
		h, err := ipc.ReadHeader(c)
		if err != nil || h.Type != ipc.MsgResponse {
			t.Fatalf("tap %d: answer %+v, %v", i, h, err)
		}
		c.Read(make([]byte, h.Length))
	}
	if out := run(t, f.inst, listLinks); out != "lo\nt19\n" {
		t.Errorf("the sandbox's interfaces after 20 requests: %q, want only the last device", out)
	}
}

// TestEgressRemoteToggle: egress off and at once on again, many times:
// the helper's new relay waits for the last one's device to go, so no
// enable meets the old device's name still taken.
func TestEgressRemoteToggle(t *testing.T) {
	f := newRemoteEgressFixture(t, WithNetwork())
	for i := range 100 {
		if err := f.inst.SetNetworkEnabled(false); err != nil {
			t.Fatalf("off %d: %v", i, err)
		}
		if err := f.inst.SetNetworkEnabled(true); err != nil {
			t.Fatalf("on %d, right after off: %v", i, err)
		}
	}
	if out := run(t, f.inst, listLinks); out != "eth0\nlo\n" {
		t.Errorf("interfaces after the toggles: %q", out)
	}
}

// TestEgressRemoteCloseRace: SetNetworkEnabled(true) racing Close (whose
// stop is a round trip to the helper) never leaves an egress stack, its
// relay or a goroutine running after Close.
func TestEgressRemoteCloseRace(t *testing.T) {
	leakcheck.Check(t)
	f := newRemoteEgressFixture(t)
	ctx := context.Background()
	for i := range 15 {
		inst, err := f.r.New(ctx, f.img)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		var onErr error
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 100 * time.Microsecond)
			onErr = inst.SetNetworkEnabled(true)
		}()
		go func() { defer wg.Done(); inst.Close() }()
		wg.Wait()
		inst.egressMu.Lock()
		left := inst.egress != nil
		inst.egressMu.Unlock()
		if left {
			t.Errorf("round %d: an egress stack outlived Close (SetNetworkEnabled: %v)", i, onErr)
		}
		if onErr != nil && !strings.Contains(onErr.Error(), "clos") && !strings.Contains(onErr.Error(), "not running") {
			t.Logf("round %d: SetNetworkEnabled during Close: %v", i, onErr)
		}
	}
}

// TestEgressRemoteRelayLost: when the relay of a sandbox's egress ends on
// its own (here another connection of the client's takes the device over,
// which ends the first relay), SetNetworkEnabled(true) sees the dead
// stack and starts egress again instead of reporting it on.
func TestEgressRemoteRelayLost(t *testing.T) {
	f := newRemoteEgressFixture(t, WithNetwork())
	addr, hits := hostServer(t)
	f.inst.dialer = rewrite(addr, DefaultDialer(netip.MustParsePrefix("127.0.0.1/32")))
	_, port, _ := net.SplitHostPort(addr)
	url := "http://192.0.2.10:" + port + "/"

	c := f.attached(t)
	sendTap(t, c, "eth0")
	if h, err := ipc.ReadHeader(c); err != nil || h.Type != ipc.MsgResponse {
		t.Fatalf("taking the device over: %+v, %v", h, err)
	}
	c.Close() // its relay and device go too
	if out := linksSettle(t, f.inst, "lo\n"); out != "lo\n" {
		t.Fatalf("interfaces after the takeover's end: %q", out)
	}
	gone := func() bool {
		f.inst.egressMu.Lock()
		defer f.inst.egressMu.Unlock()
		return f.inst.egress != nil && f.inst.egress.LinkGone()
	}
	for deadline := time.Now().Add(10 * time.Second); !gone() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !gone() {
		t.Fatal("the stack does not see its relay's end")
	}
	if err := f.inst.SetNetworkEnabled(true); err != nil {
		t.Fatal(err)
	}
	if out := run(t, f.inst, "wget -q -O - "+url); out != "hello from the host" || hits.Load() != 1 {
		t.Errorf("fetch after egress came back: %q, %d requests", out, hits.Load())
	}
}
