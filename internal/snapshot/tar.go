package snapshot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
)

// CaptureTar is Capture for a writable layer the host cannot read in place
// (a VM's disk): r carries it as an OCI layer tar, from the sandbox and so
// untrusted. It is unpacked with the layer store's checks into a store
// temp dir, then captured from there, with the same skips, excludes and
// keys as Capture. A truncated or hostile stream fails and adds nothing.
func CaptureTar(ctx context.Context, s *image.Store, ids idmap.Map, r io.Reader, skip []string, excludes []string, parent Parent, log *slog.Logger) (*Info, error) {
	td, err := s.TempDir(ctx, "snapshot-tar")
	if err != nil {
		return nil, err
	}
	defer td.Remove()
	dir := filepath.Join(td.Path(), "upper")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := image.Unpack(ctx, r, dir, image.UnpackOptions{IDs: ids, Logger: log}); err != nil {
		return nil, fmt.Errorf("snapshot: reading the sandbox's changes: %w", err)
	}
	return Capture(ctx, s, ids, dir, skip, excludes, parent, log)
}
