//go:build !linux

package gvisor

import (
	"context"
	"fmt"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

func start(context.Context, *hv.Config, bool) (hv.Sandbox, error) {
	return nil, fmt.Errorf("%w: gVisor runs on Linux only", ipc.ErrHypervisorUnavailable)
}
