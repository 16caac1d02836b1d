package engine

import (
	"context"
	"log/slog"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// Snapshot captures the instance's changes into store on top of parent,
// leaving out the generated files and what excludes match. A backend whose
// writable layer is a host directory is read in place; otherwise (a VM's
// disk) the agent sends the layer as a tar (MsgFsSnapshot), which is
// checked as any untrusted layer is. Errors are the capture's, the
// agent's, or the transport's.
func (i *Instance) Snapshot(ctx context.Context, store *image.Store, excludes []string, parent snapshot.Parent, log *slog.Logger) (*snapshot.Info, error) {
	if upper := i.sb.UpperDir(); upper != "" {
		return snapshot.Capture(ctx, store, idmap.Current(), upper, snapshot.Generated, excludes, parent, log)
	}
	var e ipc.Encoder
	ipc.EncodeSnapshotOptions(&e, ipc.SnapshotOptions{Excludes: excludes})
	_, conn, err := i.client.Hijack(ctx, ipc.Message{Type: ipc.MsgFsSnapshot, Payload: e.Bytes()})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	return snapshot.CaptureTar(ctx, store, idmap.Current(), conn, snapshot.Generated, excludes, parent, log)
}
