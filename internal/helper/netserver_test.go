package helper

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testcerts"
)

// startServer runs a network helper on loopback with mutual TLS and the
// given client grace, and returns it with the certificates' CA.
func startServer(t *testing.T, grace time.Duration) (*NetServer, *testcerts.CA) {
	t.Helper()
	ca := testcerts.NewCA("ca")
	dir := t.TempDir()
	cert, key, caFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"), filepath.Join(dir, "ca.pem")
	if err := ca.Issue("helper", []string{"helper.test"}, []net.IP{net.IPv4(127, 0, 0, 1)}).Write(cert, key); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(caFile, ca.PEM, 0o600)
	cfg, err := ParseServeFlags([]string{"-listen", "127.0.0.1:0", "-tls-cert", cert, "-tls-key", key, "-client-ca", caFile,
		"-store", filepath.Join(dir, "store"), "-client-grace", grace.String(), "-max-instances", "4",
		"-allow-registry", "127.0.0.0/8"}) // the test registries listen on loopback
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewNetServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return s, ca
}

func dialAs(t *testing.T, s *NetServer, ca *testcerts.CA, cn string) *NetClient {
	t.Helper()
	nc, err := DialNet(context.Background(), s.Addr().String(), ca.Issue(cn, nil, nil).ClientConfig(ca, "helper.test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestNetClientVanishes: a client's sandbox belongs to it alone (another
// client cannot attach to it), and once the client has vanished (its
// connections gone without a word) the helper stops the sandbox after the
// grace period.
func TestNetClientVanishes(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, 300*time.Millisecond)
	alice, bob := dialAs(t, s, ca, "alice"), dialAs(t, s, ca, "bob")
	ctx := context.Background()
	ni, _, err := alice.Start(ctx, &ipc.RemoteNewReq{}) // scratch
	if err != nil {
		t.Fatal(err)
	}
	conn, err := bob.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = ipc.CallOn(conn, ipc.MsgRemoteAttach, &ipc.InstanceAttachReq{ID: ni.ID()}, &ipc.Empty{})
	conn.Close()
	if !errors.Is(err, ipc.ErrInvalidHandle) {
		t.Errorf("bob attaching to alice's sandbox: %v, want ErrInvalidHandle", err)
	}
	if c, err := bob.Capacity(ctx); err != nil || c.Running != 1 || c.Free != 3 {
		t.Errorf("capacity: %+v, %v", c, err)
	}
	ni.agent.Close() // alice vanishes: her sandbox's connections end without MsgInstanceClose
	<-ni.done
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := bob.Capacity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vanished client's sandbox still runs: %+v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ni.Close()
}

// TestServeRefusesHostPaths: MsgInstanceNew, which names host paths, is
// refused by a network helper; a helper-side mount is refused without a
// policy allowing it.
func TestServeRefusesHostPaths(t *testing.T) {
	s, ca := startServer(t, time.Second)
	nc := dialAs(t, s, ca, "alice")
	c, err := nc.client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), ipc.MsgInstanceNew, &ipc.NewReq{Spec: ipc.InstanceSpec{Layers: []string{"/"}}}, &ipc.NewAns{})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("MsgInstanceNew on a network helper: %v", err)
	}
	_, _, err = nc.Start(context.Background(), &ipc.RemoteNewReq{Mounts: []ipc.RemoteMount{{HostPath: "/etc", Path: "/mnt"}}})
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("a helper-side mount without a policy: %v", err)
	}
}

// TestServeInsecureLoopback: -insecure-loopback serves plaintext on a
// loopback address and is refused elsewhere.
func TestServeInsecureLoopback(t *testing.T) {
	if _, err := ParseServeFlags([]string{"-listen", "0.0.0.0:0", "-insecure-loopback"}); err == nil {
		t.Error("-insecure-loopback on a wildcard address was accepted")
	}
	cfg, err := ParseServeFlags([]string{"-listen", "127.0.0.1:0", "-insecure-loopback", "-store", t.TempDir(), "-allow-registry", "127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewNetServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close()
	nc, err := DialNet(context.Background(), s.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if c, err := nc.Capacity(context.Background()); err != nil || c.MaxInstances != 100 {
		t.Errorf("capacity over plaintext: %+v, %v", c, err)
	}
}

// TestNetClientLimits: a client's maxMemoryMB bounds the sum of its
// sandboxes' memory limits (and a sandbox without one is refused), with
// errors that name the limit; capacity reports what is left.
func TestNetClientLimits(t *testing.T) {
	s, ca := startServer(t, time.Second)
	s.ledger.policy = Policy{Clients: map[string]ClientLimits{"mem": {MaxMemoryMB: 100}}}
	nc := dialAs(t, s, ca, "mem")
	ctx := context.Background()
	if _, _, err := nc.Start(ctx, &ipc.RemoteNewReq{}); !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "WithMemoryMB") {
		t.Errorf("a sandbox without a memory limit: %v", err)
	}
	ni, _, err := nc.Start(ctx, &ipc.RemoteNewReq{MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	if c, err := nc.Capacity(ctx); err != nil || c.MemoryFreeMB != 36 {
		t.Errorf("capacity after 64 of 100 MB: %+v, %v", c, err)
	}
	if _, _, err := nc.Start(ctx, &ipc.RemoteNewReq{MemoryMB: 64}); !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "maxMemoryMB") {
		t.Errorf("128 MB over a limit of 100: %v", err)
	}
}

// TestNetClientConnectionsBounded: a client holds at most its share of
// connections at once (each costs the helper buffers and a goroutine
// however idle): one more is closed unread, and taken once one ends;
// another client is served meanwhile.
func TestNetClientConnectionsBounded(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	s.conns.setPerClient(3)
	mallory, alice := dialAs(t, s, ca, "mallory"), dialAs(t, s, ca, "alice")
	ctx := context.Background()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// open makes one more connection of mallory's and says whether the
	// helper serves it.
	open := func() bool {
		c, err := mallory.dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := ipc.CallOn(c, ipc.MsgRemoteCapacity, &ipc.Empty{}, &ipc.CapacityAns{}); err != nil {
			if !errors.Is(err, ipc.ErrTransport) {
				t.Errorf("a connection over the limit: %v, want it closed unread", err)
			}
			c.Close()
			return false
		}
		held = append(held, c)
		return true
	}
	for open() {
		if len(held) > 3 {
			t.Fatalf("%d connections of a client allowed three", len(held))
		}
	}
	if len(held) == 0 {
		t.Fatal("no connection served")
	}
	if _, err := alice.Capacity(ctx); err != nil {
		t.Errorf("another client meanwhile: %v", err)
	}
	held[0].Close()
	held = held[1:]
	for deadline := time.Now().Add(30 * time.Second); !open(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no connection once one had ended")
		}
	}
}

// TestNetHandshakesBounded: connections that have not proven a
// certificate are bounded per address (each holds a goroutine until its
// handshake ends or times out): one more is closed at once, and once
// those go a client is served again.
func TestNetHandshakesBounded(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	s.handshakes.setPerClient(2)
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	// The helper has taken both once a third is closed: wait for that.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if errors.Is(err, io.EOF) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third silent connection from one address was not closed: %v", err)
		}
	}
	for _, c := range silent {
		c.Close()
	}
	// The helper sees them go when their handshakes read the end.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		nc, err := DialNet(context.Background(), s.Addr().String(), ca.Issue("alice", nil, nil).ClientConfig(ca, "helper.test"))
		if err == nil {
			_, err = nc.Capacity(context.Background())
			nc.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client once the silent connections went: %v", err)
		}
	}
}
