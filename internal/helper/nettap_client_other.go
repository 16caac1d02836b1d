//go:build !linux

package helper

import (
	"context"
	"errors"
	"os"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// StreamTap returns an error matching errors.ErrUnsupported: the egress
// stack that answers the device's frames runs on Linux.
func (ni *NetInstance) StreamTap(context.Context, ipc.NetworkReq) (*os.File, error) {
	return nil, errors.ErrUnsupported
}
