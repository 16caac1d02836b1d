package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// Snapshot captures the instance's changes into store on top of parent,
// leaving out the generated files and what excludes match. A backend whose
// writable layer is a host directory is read in place, through
// descriptors only (internal/untrusted), with the sandbox frozen where the
// host can freeze it, so that the snapshot is consistent; otherwise (a
// VM's disk) the agent sends the layer as a tar (MsgFsSnapshot), which is
// checked as any untrusted layer is. Errors are the capture's, the
// agent's, or the transport's.
func (i *Instance) Snapshot(ctx context.Context, store *image.Store, excludes []string, parent snapshot.Parent, log *slog.Logger) (*snapshot.Info, error) {
	if log == nil {
		log = i.log
	}
	if i.caps.HostUpperDir {
		thaw, err := i.freeze(ctx)
		if err != nil {
			return nil, err
		}
		defer thaw()
		upper, err := i.sb.OpenUpper()
		if err != nil {
			return nil, err
		}
		defer upper.Close()
		return snapshot.Capture(ctx, store, upper, snapshot.Generated, excludes, parent, log)
	}
	conn, err := ipc.NewAgent(i.client).Snapshot(ctx, ipc.SnapshotOptions{Excludes: excludes})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	return snapshot.CaptureTar(ctx, store, idmap.Current(), conn, snapshot.Generated, excludes, parent, log)
}

// freeze freezes the sandbox, when its backend can, and returns what thaws
// it. A host that cannot freeze it (no freezer cgroup for this user) is no
// error: the capture reads through descriptors either way, and what
// changes meanwhile may or may not be in the snapshot.
func (i *Instance) freeze(ctx context.Context) (thaw func(), err error) {
	f, ok := i.sb.(hv.Freezer)
	if !ok {
		return func() {}, nil
	}
	if err := f.Freeze(ctx); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			i.log.Debug("snapshot of a running sandbox: it cannot be frozen here", "id", i.id, "err", err)
			return func() {}, nil
		}
		f.Thaw()
		return nil, fmt.Errorf("freezing sandbox %s for its snapshot: %w", i.id, err)
	}
	return func() {
		if err := f.Thaw(); err != nil {
			i.log.Warn("thawing a sandbox after its snapshot", "id", i.id, "err", err)
		}
	}, nil
}
