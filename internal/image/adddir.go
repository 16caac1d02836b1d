package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AddLayerDir moves dir, a directory tree already in overlay format (a
// sandbox's upper directory), into the store as the layer id, and reports
// whether it moved it. When the layer exists already dir is left untouched
// and moved is false. dir must be on the store's filesystem (make it in a
// TempDir) and nothing may write into it any more. Its files keep their
// owners and modes as they are. On error dir is left where it was when
// possible.
func (s *Store) AddLayerDir(ctx context.Context, id v1.Hash, dir string) (moved bool, err error) {
	if !validHash(id) {
		return false, fmt.Errorf("adding layer directory: bad id %q", id)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return false, fmt.Errorf("adding layer directory: %w", err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("adding layer directory: %w", &fs.PathError{Op: "add", Path: dir, Err: syscall.ENOTDIR})
	}
	if s.HasLayer(id) {
		return false, nil
	}
	unlock, err := s.lockLayer(ctx, id)
	if err != nil {
		return false, err
	}
	defer unlock()
	if s.HasLayer(id) {
		return false, nil
	}
	td, err := s.TempDir(ctx, "dir")
	if err != nil {
		return false, err
	}
	defer td.Remove()
	fsDir := filepath.Join(td.Path(), "fs")
	if err := os.Rename(dir, fsDir); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			return false, fmt.Errorf("adding layer directory %s: not on the filesystem of the store %s (make it in a Store.TempDir): %w", dir, s.root, err)
		}
		return false, fmt.Errorf("adding layer directory: %w", err)
	}
	info := LayerInfo{ID: id, Source: "directory", Mode: s.mode()}
	werr := filepath.WalkDir(fsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info.Entries++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				info.Size += fi.Size()
			}
		}
		return ctx.Err()
	})
	if werr == nil {
		werr = s.commitLayer(td, info)
	}
	if werr != nil {
		if rerr := os.Rename(fsDir, dir); rerr != nil {
			s.log.Warn("layer directory lost after a failed add", "dir", dir, "err", rerr)
		}
		return false, fmt.Errorf("adding layer directory %s: %w", dir, werr)
	}
	return true, nil
}
