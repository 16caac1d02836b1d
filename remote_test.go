package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testcerts"
	"github.com/ccsandbox/sandbox/internal/testutil/testdns"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// testRegistry serves the busybox test image from an in-process registry
// listening on addr ("127.0.0.1:0", or an address other namespaces reach)
// and returns its reference.
func testRegistry(t testing.TB, addr string) string {
	t.Helper()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	reg.Listener.Close()
	reg.Listener = ln
	reg.Start()
	t.Cleanup(reg.Close)
	ref := ln.Addr().String() + "/test/busybox:1"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, src); err != nil {
		t.Fatal(err)
	}
	// The push's keep-alive connections would outlive an address the
	// test takes away (TestFleet's nodes) before the registry closes.
	if tr, ok := remote.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
	return ref
}

// testPKI is the certificates of a network helper test: a CA for the
// helpers and their clients, and a stranger's CA.
type testPKI struct {
	ca, other *testcerts.CA
	dir       string // PEM files for cc-helper serve
}

func newTestPKI(t testing.TB) *testPKI {
	p := &testPKI{ca: testcerts.NewCA("cc-test-ca"), other: testcerts.NewCA("stranger-ca"), dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(p.dir, "ca.pem"), p.ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverFiles issues a helper certificate for ips and the name
// "helpers.test" and returns the serve flags naming its files.
func (p *testPKI) serverFlags(t testing.TB, tag string, ips ...net.IP) []string {
	c := p.ca.Issue("helper-"+tag, []string{"helpers.test"}, ips)
	cert, key := filepath.Join(p.dir, tag+".pem"), filepath.Join(p.dir, tag+".key")
	if err := c.Write(cert, key); err != nil {
		t.Fatal(err)
	}
	return []string{"-tls-cert", cert, "-tls-key", key, "-client-ca", filepath.Join(p.dir, "ca.pem")}
}

// client returns the TLS configuration of client cn.
func (p *testPKI) client(cn string) *tls.Config {
	return p.ca.Issue(cn, nil, nil).ClientConfig(p.ca, "helpers.test")
}

// startNetHelper runs a network helper in this process on loopback and
// returns its address. Its clients' pulls may reach loopback, where the
// test registries listen (-allow-registry).
func startNetHelper(t testing.TB, p *testPKI, extra ...string) *helper.NetServer {
	t.Helper()
	return serveNetHelper(t, p, append([]string{"-allow-registry", "127.0.0.0/8"}, extra...)...)
}

// serveNetHelper runs a network helper in this process on loopback, with
// p's certificates and the flags extra, and returns it; it is closed with t.
func serveNetHelper(t testing.TB, p *testPKI, extra ...string) *helper.NetServer {
	t.Helper()
	args := append([]string{"-listen", "127.0.0.1:0", "-store", testCache}, p.serverFlags(t, "lo", net.IPv4(127, 0, 0, 1))...)
	cfg, err := helper.ParseServeFlags(append(args, extra...))
	if err != nil {
		t.Fatal(err)
	}
	s, err := helper.NewNetServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return s
}

// remoteClient starts a network helper in this process (startNetHelper,
// with the flags extra) and a registry with the busybox test image, dials
// the helper as client "alice" and has it pull the image; the helper, the
// client and the registry end with t.
func remoteClient(t testing.TB, extra ...string) (*helper.NetServer, *testPKI, *Remote, *Image) {
	t.Helper()
	ctx := context.Background()
	ref := testRegistry(t, "127.0.0.1:0")
	p := newTestPKI(t)
	s := startNetHelper(t, p, extra...)
	r, err := DialRemote(ctx, s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	img, err := r.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return s, p, r, img
}

// withPolicy writes policy, a network helper's JSON policy, to a file of
// the test's and returns the flags that give it to the helper.
func withPolicy(t testing.TB, policy string) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(f, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-policy", f}
}

// exercise runs a command, a file round trip and a Dial in inst.
func exercise(t testing.TB, inst *Instance) {
	t.Helper()
	out, err := inst.Command("sh", "-c", "echo hi from $(hostname)").Output()
	if err != nil || !strings.HasPrefix(string(out), "hi from") {
		t.Fatalf("command: %q, %v", out, err)
	}
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if err := inst.WriteFile("/tmp/f", data, 0o644); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	back, err := inst.ReadFile("/tmp/f")
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("ReadFile: %d bytes, %v", len(back), err)
	}
	ln, err := inst.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := inst.Dial("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through Dial: %q, %v", buf, err)
	}
}

// TestRemoteLoopback runs sandboxes on a network helper in this process
// over TCP with mutual TLS: every Instance method used works, a limit is
// refused clearly, and a helper-side mount is refused by default.
func TestRemoteLoopback(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	ref := testRegistry(t, "127.0.0.1:0")
	p := newTestPKI(t)
	policy := filepath.Join(p.dir, "policy.json")
	os.WriteFile(policy, []byte(`{"clients":{"limited":{"maxInstances":1}}}`), 0o600)
	s := startNetHelper(t, p, "-policy", policy)

	r, err := DialRemote(ctx, s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img, err := r.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, img); err == nil {
		t.Error("a helper's image started a local sandbox")
	}
	inst, err := r.New(ctx, img, WithEnv("X=1"))
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, inst)
	if _, err := r.New(ctx, img, WithMount("/etc", "/mnt")); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("WithMount of a helper path: %v, want fs.ErrPermission", err)
	}
	if err := inst.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-inst.Done():
	case <-time.After(10 * time.Second):
		t.Error("Done did not fire after Close")
	}

	lim, err := DialRemote(ctx, s.Addr().String(), p.client("limited"))
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	one, err := lim.New(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if c, err := lim.Capacity(ctx); err != nil || c.Free != 0 {
		t.Errorf("capacity of a client at its limit: %+v, %v", c, err)
	}
	if _, err := lim.New(ctx, img); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "maxInstances") {
		t.Errorf("a second sandbox over maxInstances 1: %v", err)
	}
}

// TestWriteFileStreamed: a WriteFile larger than streamWriteMin where
// descriptors cannot pass streams the data (MsgFsWriteStream): locally,
// in a VM, and through a network helper; the content arrives whole, and a
// failure (the path is a directory) comes back as the call's error.
func TestWriteFileStreamed(t *testing.T) {
	data := make([]byte, streamWriteMin+3<<20+5)
	rand.Read(data)
	check := func(t *testing.T, inst *Instance) {
		if err := inst.WriteFile("/tmp/big", data, 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := inst.ReadFile("/tmp/big")
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("read back %d of %d bytes, %v", len(back), len(data), err)
		}
		if fi, err := inst.Stat("/tmp/big"); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("stat: %v, %v", fi, err)
		}
		if err := inst.WriteFile("/tmp", data, 0o600); err == nil {
			t.Error("a streamed write onto a directory succeeded")
		}
		// A write that fails half way fails the call; the rest of the
		// stream is not waited for twice.
		if err := inst.WriteFile("/dev/full", data, 0o600); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("a streamed write into /dev/full: %v, want ENOSPC", err)
		}
		if _, err := inst.Command("true").Output(); err != nil {
			t.Errorf("the sandbox after the refused write: %v", err)
		}
	}
	t.Run("local", func(t *testing.T) { check(t, newInstance(t, busyboxImage(t), withoutDescriptors())) })
	t.Run("vm", func(t *testing.T) { check(t, vmInstance(t)) })
	t.Run("remote", func(t *testing.T) {
		_, _, r, img := remoteClient(t)
		inst, err := r.New(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		check(t, inst)
	})
}

// TestFleetPlacement: a fleet from DNS SRV records (targets resolved by
// the same resolver) and a fixed one place sandboxes on the helper with
// the most room, skip a full one, and say why when none can take one.
func TestFleetPlacement(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	ref := testRegistry(t, "127.0.0.1:0")
	p := newTestPKI(t)
	small := startNetHelper(t, p, "-max-instances", "1")
	big := startNetHelper(t, p, "-max-instances", "3")
	dns, err := testdns.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	_, smallPort, _ := net.SplitHostPort(small.Addr().String())
	_, bigPort, _ := net.SplitHostPort(big.Addr().String())
	var sp, bp int
	fmt.Sscan(smallPort, &sp)
	fmt.Sscan(bigPort, &bp)
	dns.SetSRV("_cc._tcp.helpers.test", []string{"node-a.helpers.test", "node-b.helpers.test"}, []uint16{uint16(sp), uint16(bp)})
	dns.SetA("node-a.helpers.test", net.IPv4(127, 0, 0, 1))
	dns.SetA("node-b.helpers.test", net.IPv4(127, 0, 0, 1))
	fleet, err := FleetFromDNS(ctx, "_cc._tcp.helpers.test", 0, p.client("alice").Clone(), WithResolver(dns.Resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	img, err := fleet.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		inst, err := fleet.New(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		got = append(got, helperOf(inst))
	}
	// Free: big 3, small 1, so the first goes to big; then ties may go
	// either way, but big takes 3 in all and small 1.
	counts := map[string]int{}
	for _, a := range got {
		counts[a]++
	}
	if counts[big.Addr().String()] != 3 || counts[small.Addr().String()] != 1 || got[0] != big.Addr().String() {
		t.Errorf("placement %v, want the first on %s and 3 there in all, 1 on %s", got, big.Addr(), small.Addr())
	}
	if _, err := fleet.New(ctx, img); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("a fifth sandbox on a full fleet: %v", err)
	}

	r, err := DialRemote(ctx, small.Addr().String(), p.client("bob"))
	if err != nil {
		t.Fatal(err)
	}
	static := NewFleet(r)
	defer static.Close()
	if _, err := static.New(ctx, img); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("a fixed fleet of one full helper: %v", err)
	}
}

// TestReadFileStreamed: a file too large for one message comes back whole
// through MsgFsReadStream where descriptors cannot pass (in process
// without them, and through a network helper), and a directory is refused
// with the sandbox intact.
func TestReadFileStreamed(t *testing.T) {
	data := make([]byte, ipc.MaxMessageSize+1<<20+7)
	rand.Read(data)
	check := func(t *testing.T, inst *Instance) {
		if err := inst.WriteFile("/tmp/big", data, 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := inst.ReadFile("/tmp/big")
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("read back %d of %d bytes, %v", len(back), len(data), err)
		}
		if _, err := inst.agent.ReadFileStream(context.Background(), "/tmp"); !errors.Is(err, syscall.EFBIG) {
			t.Errorf("a streamed read of a directory: %v, want EFBIG", err)
		}
		if _, err := inst.Command("true").Output(); err != nil {
			t.Errorf("the sandbox after the refused read: %v", err)
		}
	}
	t.Run("local", func(t *testing.T) { check(t, newInstance(t, busyboxImage(t), withoutDescriptors())) })
	t.Run("remote", func(t *testing.T) {
		_, _, r, img := remoteClient(t)
		inst, err := r.New(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		check(t, inst)
	})
}

// TestRemoteMountSwapRace: a client whose policy allows a helper-side
// directory mounts it writable into a sandbox, and there exchanges one of
// its entries, a directory, with a symlink to a helper path outside the
// allowed directory, as fast as it can, while it starts sandboxes that
// mount that entry. (The exchange runs in the test process, on the
// helper's side of the same directory: this test binary, linked
// dynamically, does not run in the busybox image.) The helper checks the
// path with its links resolved and the backend opens it again: every
// sandbox that starts must see the allowed directory, never what the link
// names; one whose open meets the link fails to start instead.
func TestRemoteMountSwapRace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	allowed, secret := filepath.Join(dir, "data"), filepath.Join(dir, "secret")
	for _, d := range []string{allowed, filepath.Join(allowed, "d"), secret} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(allowed, "d", "flag"), []byte("allowed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "flag"), []byte("helper's secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(allowed, "l")); err != nil {
		t.Fatal(err)
	}
	_, _, r, img := remoteClient(t, withPolicy(t, `{"allowMounts":["`+allowed+`"]}`)...)
	stop, exchanged := make(chan struct{}), make(chan int, 1)
	go func() { exchanged <- exchange(filepath.Join(allowed, "d"), filepath.Join(allowed, "l"), stop) }()

	// A start costs time, a refusal by the check nothing: the tries go on
	// until a few sandboxes have started (each meets the link at its open
	// about half the time without the fix), or many were refused.
	const starts, tries = 12, 300
	var started, failed int
	for i := 0; i < tries && started < starts; i++ {
		b, err := r.New(ctx, img, WithMount(filepath.Join(allowed, "d"), "/mnt"))
		if err != nil {
			failed++ // the check met the link, or the open did
			continue
		}
		started++
		got, err := b.ReadFile("/mnt/flag")
		b.Close()
		if err != nil || string(got) != "allowed" {
			t.Errorf("try %d: the mount of %s/d reads %q (%v), not the allowed directory's flag", i, allowed, got, err)
		}
	}
	close(stop)
	t.Logf("%d sandboxes started, %d refused, while the paths were exchanged %d times", started, failed, <-exchanged)
}

// TestRemoteMemoryLimitWraps: a client sends a memory limit of 2^63+64
// MB itself (WithMemoryMB refuses it), which the helper's ledger would
// book as a negative int64 and the cgroup would get as (2^63+64)<<20
// bytes, wrapped to 64 MiB. The helper must refuse it as a bad argument,
// and the client's share must stay whole: a sandbox over its maxMemoryMB
// is refused after it as before. A disk limit past 1 PiB (a VM's disk of
// 2^44+64 MB wrapped to 64 MiB) is refused the same.
func TestRemoteMemoryLimitWraps(t *testing.T) {
	ctx := context.Background()
	_, _, r, img := remoteClient(t, withPolicy(t, `{"clients":{"*":{"maxMemoryMB":256,"maxInstances":4}}}`)...)
	if err := WithMemoryMB(1<<63 + 64).(instanceOption)(&newOptions{}); err == nil {
		t.Error("WithMemoryMB(2^63+64) was accepted")
	}
	wraps := instanceOption(func(o *newOptions) error { o.memoryMB = 1<<63 + 64; return nil })
	if inst, err := r.New(ctx, img, wraps); err == nil {
		defer inst.Close()
		t.Error("a memory limit of 2^63+64 MB started a sandbox")
	} else if !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("a memory limit of 2^63+64 MB: %v, want an error matching fs.ErrInvalid", err)
	}
	if inst, err := r.New(ctx, img, WithMemoryMB(100000)); err == nil {
		defer inst.Close()
		t.Error("a sandbox of 100000 MB started for a client whose maxMemoryMB is 256")
	}
	// A disk limit the same: a VM's disk image of DiskMB<<20 bytes wraps.
	if err := WithDiskMB(1<<44 + 64).(instanceOption)(&newOptions{}); err == nil {
		t.Error("WithDiskMB(2^44+64) was accepted")
	}
	wrapsDisk := instanceOption(func(o *newOptions) error { o.diskMB = 1<<44 + 64; return nil })
	if inst, err := r.New(ctx, img, wrapsDisk); err == nil {
		defer inst.Close()
		t.Error("a disk limit of 2^44+64 MB started a sandbox")
	} else if !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("a disk limit of 2^44+64 MB: %v, want an error matching fs.ErrInvalid", err)
	}
}

// TestRemotePullGuarded: a client names as its registry a service on the
// helper's own loopback (where a metadata service or a kubelet's port
// would answer only the helper's host). The helper's pull must not reach
// it, and so tell the client nothing of its answer, unless the operator
// allows that network (-allow-registry, which startNetHelper gives).
func TestRemotePullGuarded(t *testing.T) {
	var hits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"errors":[{"code":"DENIED","message":"internal only: secret-key"}]}`))
	}))
	defer internal.Close()
	p := newTestPKI(t)
	s := serveNetHelper(t, p) // as an operator runs it: no -allow-registry
	r, err := DialRemote(context.Background(), s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ref := strings.TrimPrefix(internal.URL, "http://") + "/latest/meta-data:iam"
	_, err = r.Pull(context.Background(), ref, WithPlainHTTP())
	if err == nil || strings.Contains(err.Error(), "secret-key") || hits.Load() != 0 {
		t.Errorf("a pull from the helper's loopback: %d requests reached it, and the client was told %v", hits.Load(), err)
	}
}
