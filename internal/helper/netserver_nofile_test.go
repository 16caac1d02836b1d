package helper

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestNetServerOutOfDescriptors: a network helper that meets its open
// files limit (peers in their handshake, clients' connections and
// streams all hold descriptors, and its own bounds allow more than a
// common limit of 4096) waits for room and goes on serving every client,
// where its accept loop had returned: cc-helper serve exited, and an
// embedding program's helper never accepted again.
func TestNetServerOutOfDescriptors(t *testing.T) {
	s, ca := startServer(t, time.Minute)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := syscall.Rlimit{Cur: uint64(len(fds) + 40), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var silent []net.Conn
	for range 200 { // peers that never start their handshake, until none more fit
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			break
		}
		silent = append(silent, c)
	}
	// The helper's accept meets the limit: each silent peer holds a
	// descriptor of the test's and one of the helper's.
	time.Sleep(100 * time.Millisecond)
	for _, c := range silent {
		c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d silent peers held the helper at its limit", len(silent))
	select {
	case <-s.served:
		t.Fatal("the helper stopped serving once its accept met its open files limit")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := DialNet(ctx, s.Addr().String(), ca.Issue("after", nil, nil).ClientConfig(ca, "helper.test"))
	if err != nil {
		t.Fatalf("a client after the descriptors were freed: %v", err)
	}
	nc.Close()
}
