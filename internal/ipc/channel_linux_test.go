package ipc

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

func TestChannel(t *testing.T) {
	leakcheck.Check(t, ownSockets)
	local, remote, err := NewChannel()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := NewChannelListener(remote)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServerListener(ln, newTestMux(nil))
	served := make(chan error, 1)
	go func() { served <- srv.ServeOne() }()
	d, err := NewChannelDialer(local)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Connect(context.Background(), d.Dial)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := c.Call(msgEcho, []byte{byte(i)}); err != nil || !bytes.Equal(got, []byte{0, byte(i)}) {
				t.Errorf("call over the channel: %x %v", got, err)
			}
		}()
	}
	wg.Wait()
	resp, err := c.Exchange(context.Background(), Message{Type: msgSendFile, Payload: []byte("fd")})
	if err != nil || len(resp.Files) != 1 {
		t.Fatalf("descriptor over a channel connection: %v", err)
	}
	resp.Files[0].Close()
	c.Close()
	if err := <-served; err != nil {
		t.Fatalf("ServeOne: %v", err)
	}
	d.Close()
}
