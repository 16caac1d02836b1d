//go:build !linux

package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"github.com/ccsandbox/sandbox/internal/idmap"
)

// errUnsupported: the layer store needs Linux (overlay format, openat2,
// whiteout devices).
var errUnsupported = fmt.Errorf("layer store: unsupported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Unpack needs Linux; elsewhere it returns an error matching
// errors.ErrUnsupported.
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) (UnpackStats, error) {
	return UnpackStats{}, errUnsupported
}

// WriteLayerTar needs Linux; elsewhere it returns an error matching
// errors.ErrUnsupported.
func WriteLayerTar(ctx context.Context, w io.Writer, dir string, ids idmap.Map, log *slog.Logger) error {
	return errUnsupported
}

func syncFS(path string) error { return syncDir(path) }
