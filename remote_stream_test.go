package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestRemoteStreamsStayInside: a network helper serves streamed file
// calls with a descriptor the agent opens in the sandbox. While a command
// in the sandbox swaps the directory the calls go through with symlinks
// to a host directory and to the root, as fast as it can, every streamed
// write lands in the sandbox and every streamed read comes from it: the
// host canary is never read, changed or joined by a file.
func TestRemoteStreamsStayInside(t *testing.T) {
	hostDir, err := os.MkdirTemp("", "cc-canary-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(hostDir)
	os.Chmod(hostDir, 0o755)
	canary := filepath.Join(hostDir, "secret")
	secret := bytes.Repeat([]byte("host secret "), ipc.MaxMessageSize/12+1) // large enough to be streamed back
	if err := os.WriteFile(canary, secret, 0o644); err != nil {
		t.Fatal(err)
	}
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
