//go:build !linux

package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
)

// errUnsupported: the layer store needs Linux (overlay format, openat2,
// whiteout devices).
var errUnsupported = fmt.Errorf("layer store: unsupported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Unpack needs Linux; elsewhere it returns an error matching
// errors.ErrUnsupported.
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) (UnpackStats, error) {
	return UnpackStats{}, errUnsupported
}

func syncFS(path string) error { return syncDir(path) }
