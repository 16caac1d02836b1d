package sandbox

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestAgentOutOfDescriptors: the agent runs under the sandbox's
// WithOpenFiles limit, and on the streamed route it holds two descriptors
// for each connection the host has accepted from the sandbox. Code in the
// sandbox that connects more than that allows, from processes each well
// under the limit, makes the host's next connections to the agent fail,
// but the agent goes on serving: once those connections end, the sandbox
// answers again.
func TestAgentOutOfDescriptors(t *testing.T) {
	inst := hostInstance(t, withoutDescriptors(), WithOpenFiles(64))
	ln, err := inst.Listen("tcp", "127.0.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		held    []net.Conn
		stopped = make(chan error, 1)
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				stopped <- err
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	// Three processes hold 20 connections each (each well under its
	// own 64) for two seconds.
	cmd := inst.Command("bash", "-c", `for p in 1 2 3; do (for i in $(seq 20); do eval "exec $((i+10))<>/dev/tcp/127.0.0.1/9000" || exit 1; done; sleep 2) & done; wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Until the host has them all, or its Accept failed, or waits: the
	// agent has no room for another connection (how many it takes first
	// does not matter, only that it survives).
	for last, still := 0, 0; still < 20; still++ {
		mu.Lock()
		n := len(held)
		mu.Unlock()
		if n >= 60 || len(stopped) > 0 {
			break
		}
		if n != last {
			last, still = n, 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	t.Logf("the host accepted %d connections", len(held))
	for _, c := range held { // first: each frees two of the agent's descriptors
		c.Close()
	}
	mu.Unlock()
	if err := cmd.Wait(); err != nil {
		t.Logf("the connecting command: %v", err)
	}
	// The agent lets go of a connection's descriptors as both its ends
	// close, and so may still be short of room for a moment.
	err = nil
	for range 100 {
		if _, err = inst.ReadFile("/etc/hostname"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the sandbox no longer answers the host once its connections ended: %v", err)
	}
	if out := run(t, inst, "echo alive"); out != "alive\n" {
		t.Fatalf("a command after: %q", out)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("closing the listener after: %v", err)
	}
	<-stopped
}
