package helper

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
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
