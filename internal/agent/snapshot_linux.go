package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/layertar"
)

// guestIDs is the identity: in a VM the guest's ids are the sandbox's.
var guestIDs = idmap.Map{
	UIDs: []idmap.Range{{ContainerID: 0, HostID: 0, Size: math.MaxUint32}},
	GIDs: []idmap.Range{{ContainerID: 0, HostID: 0, Size: math.MaxUint32}},
}

func (a *agent) registerSnapshot() {
	ipc.Route(a.mux, ipc.MsgFsSnapshot, a.snapshotUpper)
}

// snapshotUpper answers MsgFsSnapshot where the host cannot read the
// writable layer itself (a VM's disk): after the success answer the
// connection carries the layer as an OCI layer tar (whiteouts as .wh.
// files), then closes. The host leaves out what the snapshot excludes; the
// request's options are not needed here. A failure half way closes the
// connection early, so the host reads a truncated tar.
func (a *agent) snapshotUpper(req *ipc.Request, _ *ipc.SnapshotOptions) (ipc.Empty, error) {
	if a.upper == nil {
		return ipc.Empty{}, fmt.Errorf("the host reads this sandbox's writable layer itself: %w", errors.ErrUnsupported)
	}
	dir := fmt.Sprintf("/proc/self/fd/%d", a.upper.Fd())
	req.HijackWith(func(conn net.Conn) {
		go func() {
			defer conn.Close()
			if err := layertar.Write(context.Background(), conn, dir, guestIDs, a.log); err != nil {
				a.log.Warn("snapshot: writing the layer", "err", err)
			}
		}()
	})
	return ipc.Empty{}, nil
}
