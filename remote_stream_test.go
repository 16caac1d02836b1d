package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestRemoteStreamsStayInside: a network helper serves streamed writes
// with a descriptor the agent opens in the sandbox (and forwards streamed
// reads to the agent). While a command in the sandbox swaps the directory
// the calls go through with symlinks to a host directory and to the root,
// as fast as it can, every streamed write lands in the sandbox and every
// streamed read comes from it: the host canary is never read, changed or
// joined by a file.
func TestRemoteStreamsStayInside(t *testing.T) {
	secret := bytes.Repeat([]byte("host secret "), ipc.MaxMessageSize/12+1) // large enough to be streamed back
	hostDir, canary := hostCanary(t, secret)
	_, _, r, img := remoteClient(t)
	inst, err := r.New(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	// The swapper: /tmp/sw is a directory (holding a file called secret),
	// a link to the host directory, or a link to / (where hostDir's path
	// leads nowhere in the sandbox), in turn.
	swap := inst.Command("sh", "-c", fmt.Sprintf(`
		while :; do
			rm -rf /tmp/sw; mkdir /tmp/sw; echo inside > /tmp/sw/secret
			rm -rf /tmp/sw; ln -s %s /tmp/sw
			rm -f /tmp/sw; ln -s / /tmp/sw
			rm -f /tmp/sw; ln -s ../../../../..%s /tmp/sw
			rm -f /tmp/sw
		done`, hostDir, hostDir))
	if err := swap.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		swap.Process.Kill()
		swap.Wait()
	}()
	data := make([]byte, streamWriteMin+1)
	rand.Read(data)
	var wrote, read int
	for range 200 {
		if inst.agent.WriteFileStream(context.Background(), "/tmp/sw/secret", data, 0o644) == nil {
			wrote++
		}
		got, err := inst.agent.ReadFileStream(context.Background(), "/tmp/sw/secret")
		if bytes.Contains(got, []byte("host secret")) {
			t.Fatal("a streamed read returned the host canary")
		}
		if err == nil {
			read++
		}
	}
	t.Logf("%d of 200 streamed writes and %d reads found a file in the swapping directory", wrote, read)
	if b, _ := os.ReadFile(canary); !bytes.Equal(b, secret) {
		t.Error("the host canary changed")
	}
	if entries, _ := os.ReadDir(hostDir); len(entries) != 1 {
		t.Errorf("files appeared in the host directory: %v", entries)
	}
	// The sandbox itself is intact, and its own file takes a stream.
	if err := inst.WriteFile("/tmp/mine", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if back, err := inst.ReadFile("/tmp/mine"); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back %d of %d bytes, %v", len(back), len(data), err)
	}
}

// TestRemoteStreamOutlivesNothing: a streamed write whose sandbox is
// closed half way, its client still holding the stream, ends with an
// error on the client, and leaves nothing on either side: the helper's
// copy stops with the sandbox rather than waiting for bytes that will
// never come.
func TestRemoteStreamOutlivesNothing(t *testing.T) {
	leakcheck.Check(t)
	_, _, r, img := remoteClient(t)
	inst, err := r.New(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	req := &ipc.WriteStreamReq{Path: "/tmp/half", Perm: 0o644, Size: 64 << 20}
	files, conn, err := inst.agent.Client().DoStream(context.Background(), ipc.MsgFsWriteStream, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	defer conn.Close()
	if _, err := conn.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	err = ipc.ReadStatus(conn)
	var te *ipc.TransportError
	if !errors.As(err, &te) {
		t.Fatalf("the status of a stream whose sandbox closed: %v, want a broken stream", err)
	}
}

// TestRemoteStreamsOfOtherFiles: what is not a regular file of the
// sandbox's root goes to the agent, which copies inside the sandbox: a
// pipe is opened once (its reader gets the whole stream), a device that
// fails the write fails the call without a hang, and a file of procfs the
// sandbox points a name at is written with the sandbox's credentials,
// not the helper's: a negative nice in a process's autogroup needs
// CAP_SYS_NICE, which the sandbox lacks and a helper run as root holds.
func TestRemoteStreamsOfOtherFiles(t *testing.T) {
	_, _, r, img := remoteClient(t)
	inst, err := r.New(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	data := make([]byte, streamWriteMin+1)
	rand.Read(data)
	if out, err := inst.Command("mkfifo", "/tmp/fifo").CombinedOutput(); err != nil {
		t.Fatalf("mkfifo: %s %v", out, err)
	}
	reader := inst.Command("sh", "-c", "cat /tmp/fifo > /tmp/fifo.out")
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteFile("/tmp/fifo", data, 0o644); err != nil {
		t.Fatalf("a streamed write into a pipe: %v", err)
	}
	if err := reader.Wait(); err != nil {
		t.Fatal(err)
	}
	if back, err := inst.ReadFile("/tmp/fifo.out"); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("the pipe's reader got %d of %d bytes, %v", len(back), len(data), err)
	}
	if err := inst.WriteFile("/dev/full", data, 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("a streamed write into /dev/full: %v, want ENOSPC", err)
	}
	if err := inst.Symlink("/dev/full", "/tmp/full"); err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteFile("/tmp/full", data, 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("a streamed write into a link to /dev/full: %v, want ENOSPC", err)
	}
	sleeper := inst.Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleeper.Process.Kill()
		sleeper.Wait()
	}()
	autogroup := fmt.Sprintf("/proc/%d/autogroup", sleeper.Process.Pid)
	if err := inst.Symlink(autogroup, "/tmp/innocent.bin"); err != nil {
		t.Fatal(err)
	}
	nice := append([]byte("-20\n"), make([]byte, streamWriteMin)...)
	inst.WriteFile("/tmp/innocent.bin", nice, 0o644) // refused, or not
	if b, err := inst.ReadFile(autogroup); err != nil || bytes.Contains(b, []byte("nice -")) {
		t.Errorf("the sandbox's autogroup after a streamed write of -20 through a link: %q %v", b, err)
	}
}

// TestRemoteVanishesMidCall: a client whose calls are stuck in its
// sandbox's agent (a write to a pipe the sandbox made and nobody reads:
// the agent's open blocks) and which then vanishes still loses its
// sandbox after the grace period, its processes with it, and the helper
// still closes.
func TestRemoteVanishesMidCall(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	// A grace that a loaded machine's pause between the client's
	// connections does not outlast (100 ms once did, under make test).
	s := startNetHelper(t, p, "-client-grace", "2s")
	ref := testRegistry(t, "127.0.0.1:0")
	r, err := DialRemote(ctx, s.Addr().String(), p.client("mallory"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img, err := r.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := r.New(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if out, err := inst.Command("mkfifo", "/tmp/fifo").CombinedOutput(); err != nil {
		t.Fatalf("mkfifo: %s %v", out, err)
	}
	before := s.MessagesServed()
	done := make(chan error, 2)
	for _, size := range []int{1000, streamWriteMin + 1} { // a write in one message, and a streamed one
		go func() { done <- inst.WriteFile("/tmp/fifo", make([]byte, size), 0o644) }()
	}
	for s.MessagesServed() < before+2 {
		runtime.Gosched()
	}
	inst.agent.Client().Close() // the client vanishes: its connections end, no MsgInstanceClose
	for range 2 {
		if err := <-done; err == nil {
			t.Error("a write to a pipe nobody reads succeeded")
		}
	}
	other, err := DialRemote(ctx, s.Addr().String(), p.client("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := other.Capacity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after its client vanished mid-call (grace 2s), the sandbox still runs: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForwardOutlastsStreamLimit: the client holds 200 streams (dials
// into its sandbox that nobody accepts), and code in the sandbox
// connects to a listener the client Forwards 300 times, to a service
// that holds every connection; the Forward meets the helper's limit on
// one client's streams (256) before its own (64 at once). It waits that
// out: once the service and the client let their connections go, every
// connection still waiting is forwarded.
func TestForwardOutlastsStreamLimit(t *testing.T) {
	const conns = 300
	_, _, r, img := remoteClient(t)
	inst, err := r.New(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	accepted := make(chan net.Conn, conns)
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	ln, err := inst.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	idle, err := inst.Listen("tcp", "127.0.0.1:9090") // never accepted from
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	var dials []net.Conn
	defer func() {
		for _, c := range dials {
			c.Close()
		}
	}()
	for range 200 {
		c, err := inst.Dial("tcp", "127.0.0.1:9090")
		if err != nil {
			t.Fatal(err)
		}
		dials = append(dials, c)
	}
	fw, err := inst.Forward(ln, "tcp", svc.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	flood := inst.Command("sh", "-c", fmt.Sprintf("for i in $(seq %d); do nc 127.0.0.1 8080 </dev/null >/dev/null 2>&1 & done; wait", conns))
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Held by the service until the client's limit stops more (a few
	// streams are the command's own) and none has come for two seconds.
	deadline := time.After(time.Minute)
	for quiet := false; !quiet; {
		select {
		case c := <-accepted:
			held = append(held, c)
		case <-time.After(2 * time.Second):
			quiet = len(held) >= 40
		case <-deadline:
			t.Fatalf("the service got %d of the sandbox's %d connections in a minute", len(held), conns)
		}
	}
	got := len(held)
	if got >= maxForwardConns {
		t.Errorf("the Forward passed %d connections at once, with the client's streams at their limit", got)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	for _, c := range dials {
		c.Close()
	}
	dials = nil
	for got < conns {
		select {
		case c := <-accepted:
			c.Close()
			got++
		case <-time.After(time.Minute):
			t.Fatalf("the Forward passed %d of the sandbox's %d connections, then none for a minute", got, conns)
		}
	}
	if err := flood.Wait(); err != nil {
		t.Errorf("the sandbox's connections: %v", err)
	}
}
