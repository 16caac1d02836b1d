//go:build !linux

package ns

import (
	"context"
	"fmt"
	"runtime"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Backend is the namespace backend; it needs Linux.
type Backend struct{}

// Name returns "ns".
func (Backend) Name() string { return "ns" }

// Capabilities reports nothing: the backend cannot run here.
func (Backend) Capabilities() hv.Capabilities { return hv.Capabilities{} }

// Start fails: namespaces are a Linux feature.
func (Backend) Start(ctx context.Context, cfg *hv.Config) (hv.Sandbox, error) {
	return nil, fmt.Errorf("%w: Linux namespaces are not available on %s", ipc.ErrHypervisorUnavailable, runtime.GOOS)
}
