//go:build !linux

package snapshot

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/ccsandbox/sandbox/internal/untrusted"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// errUnsupported: snapshots copy Linux overlay directories.
var errUnsupported = errors.New("snapshots need Linux")

type inode struct{ dev, ino uint64 }

type linked struct{ rel, p string }

type copier struct {
	exclude *matcher
	log     *slog.Logger
	links   map[inode]linked
}

func newCopier(exclude *matcher, log *slog.Logger) *copier {
	return &copier{exclude: exclude, log: log, links: map[inode]linked{}}
}

func (c *copier) copyTree(ctx context.Context, src *untrusted.Dir, dst *os.File) (v1.Hash, int, error) {
	return v1.Hash{}, 0, errUnsupported
}

// HashTree needs Linux.
func HashTree(ctx context.Context, dir string) (v1.Hash, int, error) {
	return v1.Hash{}, 0, errUnsupported
}
