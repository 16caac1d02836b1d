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
	d, ok := i.sb.(upperDisk)
	if !ok || d.UpperDiskMB() == 0 {
		return snapshot.CaptureTar(ctx, store, idmap.Current(), conn, 0, snapshot.Generated, excludes, parent, log)
	}
	limit, tooLarge := diskTarBound(d.UpperDiskMB())
	info, err := snapshot.CaptureTar(ctx, store, idmap.Current(), conn, limit, snapshot.Generated, excludes, parent, log)
	if errors.Is(err, image.ErrTooLarge) {
		// The tar, or what it unpacks to, passed the disk's bound.
		return nil, tooLarge
	}
	return info, err
}

// upperDisk is a sandbox whose writable layer has a fixed size (a VM's
// disk, gVisor's tmpfs or memory): the tar of its changes that the agent
// sends is bounded by it. UpperDiskMB is that size in MiB, 0 when it is
// not known.
type upperDisk interface {
	UpperDiskMB() uint64
}

// diskTarBound returns what a snapshot of a writable layer on a disk of
// mb MiB may take, and the error past it: twice the disk and 16 MiB, in
// the tar's bytes and in what it unpacks to (CaptureTar's bound, which
// image.Unpack holds to both). The files' data cannot take more than the
// disk, and the rest leaves room for the tar's headers (512 bytes an
// entry, more with long names and xattrs). The agent sends a sandbox's
// sparse files at their full size, holes included, and so they count as
// that much; a sparse entry a hostile agent sends instead, a few bytes
// standing for a file of many GiB, counts so too in what it unpacks to.
// Past 16 GiB of disk, image.DefaultMaxBytes is the bound.
func diskTarBound(mb uint64) (int64, error) {
	limit := image.DefaultMaxBytes
	if mb < uint64(limit>>21) {
		limit = min(limit, int64(mb)<<21+16<<20)
	}
	return limit, fmt.Errorf(
		"the sandbox sent more than %d bytes of changes, more than its writable disk of %d MiB can hold (a tar of its files, where sparse files count at their full size): %w",
		limit, mb, image.ErrTooLarge)
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
