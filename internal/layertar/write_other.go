//go:build !linux

package layertar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"github.com/ccsandbox/sandbox/internal/idmap"
)

// Write needs Linux (overlay format, whiteout devices); elsewhere it
// returns an error matching errors.ErrUnsupported.
func Write(ctx context.Context, w io.Writer, dir string, ids idmap.Map, log *slog.Logger) error {
	return fmt.Errorf("layer export: unsupported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
