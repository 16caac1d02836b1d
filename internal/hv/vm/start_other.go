//go:build !linux

package vm

import (
	"context"
	"fmt"
	"runtime"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// start fails: the backend starts QEMU in a user namespace, a Linux
// feature (hvf and whpx hosts are a later step; accelerator knows them).
func start(ctx context.Context, cfg *hv.Config) (hv.Sandbox, error) {
	return nil, fmt.Errorf("%w: the VM backend runs on Linux hosts only, not %s", ipc.ErrHypervisorUnavailable, runtime.GOOS)
}
