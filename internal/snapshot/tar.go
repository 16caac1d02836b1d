package snapshot

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/untrusted"
)

// CaptureTar is Capture for a writable layer the host cannot read in place
// (a VM's disk): r carries it as an OCI layer tar, from the sandbox and so
// untrusted. It is unpacked with the layer store's checks into a store
// temp dir, then captured from there, with the same skips, excludes and
// keys as Capture. maxBytes bounds both the tar's bytes and what it
// unpacks to, a sparse entry's holes included (0: image.DefaultMaxBytes):
// a hostile agent's sparse entry of a few bytes may stand for a file of
// many GiB. A truncated or hostile stream fails and adds nothing.
func CaptureTar(ctx context.Context, s *image.Store, ids idmap.Map, r io.Reader, maxBytes int64, skip []string, excludes []string, parent Parent, log *slog.Logger) (*Info, error) {
	td, err := s.TempDir(ctx, "snapshot-tar")
	if err != nil {
		return nil, err
	}
	defer td.Remove()
	f, err := td.Mkdir("upper")
	if err != nil {
		return nil, err
	}
	dir := f.Name()
	f.Close()
	if _, err := image.Unpack(ctx, r, dir, image.UnpackOptions{IDs: ids, Logger: log, Limits: image.Limits{MaxBytes: maxBytes}, RequireEnd: true}); err != nil {
		return nil, fmt.Errorf("snapshot: reading the sandbox's changes: %w", err)
	}
	upper, err := untrusted.Open(dir)
	if err != nil {
		return nil, err
	}
	defer upper.Close()
	return Capture(ctx, s, upper, skip, excludes, parent, log)
}
