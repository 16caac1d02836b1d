package dockerfile

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// writeOp writes one source into the layer; fetched is where URLs are
// downloaded.
func (s *state) writeOp(w *layerWriter, src srcFS, op copyOp, own *owner, mode *fs.FileMode, fromContext bool, excl *ignoreRules, tmp, fetched string, unpackURL bool) error {
	newDir := dirMeta{mode: fs.ModeDir | 0o755}
	if own != nil {
		newDir.uid, newDir.gid = own.uid, own.gid
	}
	if op.keep != "" {
		if err := s.keptParents(w, src, op, own, fromContext, newDir); err != nil {
			return err
		}
	}
	switch op.kind {
	case opData:
		if err := w.mkdirAll(parentRel(op.dest), newDir); err != nil {
			return err
		}
		m := fs.FileMode(0o644)
		if mode != nil {
			m = *mode
		}
		return w.file(op.dest, bytes.NewReader(op.data), m, newDir.uid, newDir.gid, time.Now())
	case opRemote:
		if err := s.fetch(op.remote, fetched); err != nil {
			return err
		}
		if unpackURL {
			if r, closeFn, ok, err := openArchive(op.remote.host); err != nil {
				return err
			} else if ok {
				defer closeFn()
				if err := os.Mkdir(tmp, 0o700); err != nil {
					return err
				}
				return w.extract(s.b.ctx, r, op.into, tmp, newDir)
			}
		}
		if err := w.mkdirAll(parentRel(op.dest), newDir); err != nil {
			return err
		}
		m := fs.FileMode(0o600) // as Docker gives a fetched file
		if mode != nil {
			m = *mode
		}
		return w.copyFile(op.dest, op.remote.host, m, newDir.uid, newDir.gid, op.remote.mtime)
	case opArchive:
		r, closeFn, ok, err := openArchive(op.e.host)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is no longer an archive", op.rel)
		}
		defer closeFn()
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return err
		}
		return w.extract(s.b.ctx, r, op.dest, tmp, newDir)
	case opTree:
		if op.keep != "" {
			// --parents keeps the directory itself, as it is.
			return s.copyEntry(w, src, op.rel, op.dest, own, mode, fromContext, excl, op.matchPath())
		}
		if err := w.mkdirAll(op.dest, newDir); err != nil {
			return err
		}
		names, err := src.readDir(op.rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := s.copyEntry(w, src, joinRel(op.rel, n), joinRel(op.dest, n), own, mode, fromContext, excl, n); err != nil {
				return err
			}
		}
		return nil
	default:
		if err := w.mkdirAll(parentRel(op.dest), newDir); err != nil {
			return err
		}
		return s.copyEntry(w, src, op.rel, op.dest, own, mode, fromContext, nil, "")
	}
}

// keptParents makes the directories COPY --parents keeps above a source,
// as the source's own directories are (owner aside with --chown), under
// the destination's directories, made as newDir.
func (s *state) keptParents(w *layerWriter, src srcFS, op copyOp, own *owner, fromContext bool, newDir dirMeta) error {
	if !strings.HasSuffix(op.dest, op.keep) {
		return nil // a symlink of the stage moved it: no parents to copy
	}
	dirs := splitRel(parentRel(op.keep))
	top := strings.TrimSuffix(strings.TrimSuffix(op.dest, op.keep), "/")
	if err := w.mkdirAll(top, newDir); err != nil {
		return err
	}
	// The source directories that hold the entry, from the pivot down.
	srcDir := parentRel(op.rel)
	for range dirs {
		srcDir = parentRel(srcDir)
	}
	cur := top
	for _, d := range dirs {
		cur, srcDir = joinRel(cur, d), joinRel(srcDir, d)
		if _, made := w.dirs[cur]; made {
			continue
		}
		meta := newDir
		if e, err := src.lstat(srcDir); err == nil && e.mode.IsDir() {
			meta = dirMeta{mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime}
			if fromContext {
				meta.uid, meta.gid = 0, 0
			}
			if own != nil {
				meta.uid, meta.gid = own.uid, own.gid
			}
		}
		if err := w.dir(cur, meta); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies the source entry rel, and what it holds less what
// excl leaves out (matching paths from matchPath), to dest.
func (s *state) copyEntry(w *layerWriter, src srcFS, rel, dest string, own *owner, mode *fs.FileMode, fromContext bool, excl *ignoreRules, matchPath string) error {
	if err := s.b.ctx.Err(); err != nil {
		return err
	}
	e, err := src.lstat(rel)
	if err != nil {
		return err
	}
	if matchPath != "" && excl.skip(matchPath, e.mode.IsDir()) {
		return nil
	}
	uid, gid := e.uid, e.gid
	if fromContext {
		uid, gid = 0, 0
	}
	if own != nil {
		uid, gid = own.uid, own.gid
	}
	m := e.mode
	if mode != nil {
		m = m.Type() | *mode
	}
	switch {
	case e.mode.IsDir():
		if err := w.dir(dest, dirMeta{mode: m, uid: uid, gid: gid, mtime: e.mtime}); err != nil {
			return err
		}
		names, err := src.readDir(rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := s.copyEntry(w, src, joinRel(rel, n), joinRel(dest, n), own, mode, fromContext, excl, joinRel(matchPath, n)); err != nil {
				return err
			}
		}
		return nil
	case e.mode.IsRegular():
		return w.copyFile(dest, e.host, m, uid, gid, e.mtime)
	case e.mode.Type() == fs.ModeSymlink:
		return w.symlink(dest, e.link, uid, gid, e.mtime)
	default:
		return nil // devices, fifos and sockets are not copied
	}
}
