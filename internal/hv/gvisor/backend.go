package gvisor

import (
	"context"

	"github.com/ccsandbox/sandbox/internal/hv"
)

// Backend starts gVisor sandboxes. The zero value uses a runsc named by
// CC_RUNSC or found on $PATH.
type Backend struct {
	// SelfRunsc: this program links runsc in (the opt-in package gvisor
	// sets it) and runs as runsc when neither CC_RUNSC nor $PATH names
	// one.
	SelfRunsc bool
}

// Name returns "gvisor".
func (Backend) Name() string { return "gvisor" }

// Capabilities: connections are yamux streams over one socket, which
// carry no descriptors; the writable layer is inside gVisor; gVisor takes
// no kernel image.
func (Backend) Capabilities() hv.Capabilities { return hv.Capabilities{} }

// Start starts a gVisor sandbox for cfg and returns once its agent serves.
// It returns an error wrapping ipc.ErrHypervisorUnavailable, naming what is
// missing and how to get it, when there is no usable runsc.
func (b Backend) Start(ctx context.Context, cfg *hv.Config) (hv.Sandbox, error) {
	return start(ctx, cfg, b.SelfRunsc)
}
