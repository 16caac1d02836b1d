package helper

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestNetBuildNeedsTheSDK: a helper built without the SDK's builder (as
// this package's tests are) says it cannot build, and the connection
// serves on.
func TestNetBuildNeedsTheSDK(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	nc := dialAs(t, s, ca, "alice")
	ctx := context.Background()
	_, err := nc.Build(ctx, &ipc.BuildReq{Dockerfile: []byte("FROM scratch\n")}, nil)
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "without the SDK's builder") {
		t.Errorf("a build on a helper without a builder: %v", err)
	}
	if _, err := nc.Capacity(ctx); err != nil {
		t.Errorf("the connection after the refusal: %v", err)
	}
}

// TestNetBuildSlowProgress: a client whose progress callback pauses for
// longer than the connections' TCP_USER_TIMEOUT (a second here) keeps its
// build: the helper's end of the event stream does without the timeout,
// as a sandbox's streams do (see streamUserTimeout).
func TestNetBuildSlowProgress(t *testing.T) {
	leakcheck.Check(t)
	timeout := userTimeout
	userTimeout = time.Second
	t.Cleanup(func() { userTimeout = timeout })
	registered := builder
	t.Cleanup(func() { builder = registered })
	const events = 2000
	SetBuilder(func(ctx context.Context, b *Build) (*snapshot.Info, error) {
		out := strings.Repeat("x", 16<<10) // 32 MB of events in all: every buffer on the way fills
		for i := 0; i < events && ctx.Err() == nil; i++ {
			b.Progress(dockerfile.Event{Step: i, Total: events, Output: out})
		}
		return nil, errors.New("the test's build ends here")
	})
	s, ca := startServer(t, time.Minute)
	n := 0
	_, err := dialAs(t, s, ca, "alice").Build(context.Background(), &ipc.BuildReq{Dockerfile: []byte("FROM scratch\n")}, func(ipc.BuildEvent) {
		if n++; n == 1 {
			time.Sleep(4 * userTimeout)
		}
	})
	if err == nil || !strings.Contains(err.Error(), "the test's build ends here") || n < events {
		t.Errorf("a build whose progress paused for 4 user timeouts: %d of %d events, %v", n, events, err)
	}
}
