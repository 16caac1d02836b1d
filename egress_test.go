package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// egressOrSkip starts a sandbox with egress. Where this host cannot give
// an unprivileged sandbox a network device, New must say why, naming
// /dev/net/tun, and the test checks that instead.
func egressInstance(t *testing.T, opts ...Option) *Instance {
	t.Helper()
	if os.Geteuid() != 0 && !tunUsable() && os.Getenv("CC_BACKEND") != string(BackendGVisor) { // gVisor's device is its own
		_, err := New(context.Background(), HostImage(), append([]Option{WithCacheDir(testCache), WithNetwork()}, opts...)...)
		if err == nil || !strings.Contains(err.Error(), "/dev/net/tun") {
			t.Fatalf("egress without access to /dev/net/tun: %v, want an error naming it", err)
		}
		t.Skip("this host keeps /dev/net/tun from unprivileged users; the error above is the check")
	}
	return hostInstance(t, append([]Option{WithNetwork()}, opts...)...)
}

func tunUsable() bool {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err == nil {
		f.Close()
	}
	return err == nil
}

// hostServer serves HTTP on the host's loopback and counts requests.
func hostServer(t *testing.T) (addr string, hits *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = new(atomic.Int32)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "hello from the host")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), hits
}

// rewrite sends flows to the made-up address 192.0.2.10 (TEST-NET-1) to
// target instead, through base: the sandbox reaches the host's loopback
// only if base allows it.
func rewrite(target string, base DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "192.0.2.10:") {
			_, port, _ := net.SplitHostPort(target)
			if network == "tcp" {
				addr = target
			} else {
				addr = "127.0.0.1:" + port
			}
		}
		return base(ctx, network, addr)
	}
}

func TestEgressDialerPolicy(t *testing.T) {
	addr, hits := hostServer(t)
	_, port, _ := net.SplitHostPort(addr)
	url := "http://192.0.2.10:" + port + "/"

	allowed := egressInstance(t, WithDialer(rewrite(addr, DefaultDialer(netip.MustParsePrefix("127.0.0.1/32")))))
	if out := run(t, allowed, "busybox wget -q -O - "+url); out != "hello from the host" {
		t.Errorf("fetch through an allowing dialer: %q", out)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the host server", hits.Load())
	}

	refused := egressInstance(t, WithDialer(rewrite(addr, DefaultDialer())))
	start := time.Now()
	out, err := refused.Command("busybox", "wget", "-q", "-O", "-", url).CombinedOutput()
	if err == nil {
		t.Fatalf("the default dialer let the sandbox reach the host's loopback: %q", out)
	}
	if hits.Load() != 1 {
		t.Errorf("a refused flow reached the host server (%d requests)", hits.Load())
	}
	if d := time.Since(start); d > 9*time.Second {
		t.Errorf("the refusal took %v (a timeout, not a reset)", d)
	}
	// Cloud metadata and the gateway itself are refused too.
	for _, target := range []string{"169.254.169.254:80", "10.0.2.2:80"} {
		if out, err := refused.Command("busybox", "nc", "-w", "5", strings.Split(target, ":")[0], strings.Split(target, ":")[1]).CombinedOutput(); err == nil {
			t.Errorf("connected to %s: %q", target, out)
		}
	}
}

// udpServer serves UDP on the host's loopback until the test ends: each
// datagram gets what answer returns for it, or nothing when that is nil.
func udpServer(t *testing.T, answer func(datagram []byte) []byte) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := answer(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return pc
}

func TestEgressDNSAndUDP(t *testing.T) {
	echo := udpServer(t, func(b []byte) []byte { return append([]byte("echo:"), b...) })
	inst := egressInstance(t, WithDialer(rewrite(echo.LocalAddr().String(), DefaultDialer(netip.MustParsePrefix("127.0.0.1/32")))))
	if out := run(t, inst, "cat /etc/resolv.conf"); !strings.Contains(out, "10.0.2.2") {
		t.Errorf("resolv.conf: %q", out)
	}
	out := run(t, inst, "busybox nslookup localhost 10.0.2.2")
	if !strings.Contains(out, "127.0.0.1") {
		t.Errorf("DNS through the host: %q", out)
	}
	_, port, _ := net.SplitHostPort(echo.LocalAddr().String())
	got, err := inst.Command("bash", "-c", "exec 3<>/dev/udp/192.0.2.10/"+port+"; echo ping >&3; timeout 10 head -c 10 <&3").Output()
	if err != nil || string(got) != "echo:ping\n" {
		t.Errorf("UDP through egress: %q %v", got, err)
	}
}

// listLinks lists the sandbox's network interfaces, sorted (from /proc,
// which gVisor has; its /sys has no class/net).
const listLinks = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"

func TestEgressOffAndToggle(t *testing.T) {
	inst := hostInstance(t)
	if out := run(t, inst, listLinks); out != "lo\n" {
		t.Errorf("interfaces without networking: %q", out)
	}
	start := time.Now()
	out, err := inst.Command("busybox", "nc", "-w", "5", "192.0.2.10", "80").CombinedOutput()
	if err == nil {
		t.Fatalf("connected with networking off: %q", out)
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("the connect took %v: it should fail at once", time.Since(start))
	}
	if os.Geteuid() != 0 && !tunUsable() && os.Getenv("CC_BACKEND") != string(BackendGVisor) { // gVisor's device is its own
		err := inst.SetNetworkEnabled(true)
		if err == nil || !strings.Contains(err.Error(), "/dev/net/tun") {
			t.Fatalf("SetNetworkEnabled without /dev/net/tun: %v", err)
		}
		return
	}
	addr, _ := hostServer(t)
	inst.dialer = rewrite(addr, DefaultDialer(netip.MustParsePrefix("127.0.0.1/32")))
	_, port, _ := net.SplitHostPort(addr)
	if err := inst.SetNetworkEnabled(true); err != nil {
		t.Fatal(err)
	}
	if out := run(t, inst, listLinks); out != "eth0\nlo\n" {
		t.Errorf("interfaces with networking: %q", out)
	}
	if out := run(t, inst, "busybox wget -q -O - http://192.0.2.10:"+port+"/"); out != "hello from the host" {
		t.Errorf("fetch after enabling: %q", out)
	}
	if err := inst.SetNetworkEnabled(false); err != nil {
		t.Fatal(err)
	}
	if out := run(t, inst, listLinks); out != "lo\n" {
		t.Errorf("interfaces after disabling: %q", out)
	}
	if out, err := inst.Command("busybox", "wget", "-q", "-O", "-", "http://192.0.2.10:"+port+"/").CombinedOutput(); err == nil {
		t.Errorf("fetched after disabling: %q", out)
	}
	var errno syscall.Errno
	_ = errors.As(err, &errno)
}

// TestEgressRemote: a network helper's sandbox with WithNetwork reaches
// the network through this process, never from the helper's host: the
// helper relays the device's frames (MsgRemoteTap) to the stack here, so
// each flow goes through this process's dialer (which sends the made-up
// 192.0.2.10 to a server on this host's loopback) and DNS is answered
// here. Turning egress off removes the device and fails connections at
// once; turning it on again works; nothing is left afterwards.
func TestEgressRemote(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	_, _, r, img := remoteClient(t)
	addr, hits := hostServer(t)
	_, port, _ := net.SplitHostPort(addr)
	url := "http://192.0.2.10:" + port + "/"
	var dialed atomic.Int32
	base := rewrite(addr, DefaultDialer(netip.MustParsePrefix("127.0.0.1/32")))
	dialer := func(ctx context.Context, network, a string) (net.Conn, error) {
		dialed.Add(1)
		return base(ctx, network, a)
	}
	opts := []Option{WithNetwork(), WithDialer(dialer)}
	if os.Geteuid() != 0 && !tunUsable() && os.Getenv("CC_BACKEND") != string(BackendGVisor) { // gVisor's device is its own
		_, err := r.New(ctx, img, opts...)
		if err == nil || !strings.Contains(err.Error(), "/dev/net/tun") {
			t.Fatalf("remote egress without access to /dev/net/tun: %v, want an error naming it", err)
		}
		t.Skip("this host keeps /dev/net/tun from unprivileged users; the error above is the check")
	}
	inst, err := r.New(ctx, img, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()

	if out := run(t, inst, "wget -q -O - "+url); out != "hello from the host" {
		t.Errorf("fetch through the helper's relay: %q", out)
	}
	if hits.Load() != 1 || dialed.Load() < 1 {
		t.Errorf("%d requests reached the server, %d flows this process's dialer", hits.Load(), dialed.Load())
	}
	if out := run(t, inst, "nslookup localhost 10.0.2.2"); !strings.Contains(out, "127.0.0.1") {
		t.Errorf("DNS through this process: %q", out)
	}

	if err := inst.SetNetworkEnabled(false); err != nil {
		t.Fatal(err)
	}
	if out := run(t, inst, listLinks); out != "lo\n" {
		t.Errorf("interfaces after disabling: %q", out)
	}
	if out, err := inst.Command("nc", "-w", "5", "192.0.2.10", port).CombinedOutput(); err == nil {
		t.Errorf("connected with egress off: %q", out)
	}
	if err := inst.SetNetworkEnabled(true); err != nil {
		t.Fatal(err)
	}
	if out := run(t, inst, "wget -q -O - "+url); out != "hello from the host" {
		t.Errorf("fetch after enabling again: %q", out)
	}
	if hits.Load() != 2 {
		t.Errorf("%d requests reached the server, want 2", hits.Load())
	}
	if err := inst.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
