package dockerfile

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// WriteContext writes the build context dir, as Build reads it (less what
// its .dockerignore leaves out), to w as a plain tar: directories,
// regular files and symlinks, owned by root, with their permission bits
// and modification times, in name order, so that the same files give the
// same bytes. A socket is left out, as docker leaves it; a device or a
// pipe is an error, as is a name that starts with ".wh." (a layer tar's
// mark of a deletion) and a file that shrinks while it is read (one that
// grows is sent as long as it was). It
// returns ctx's error once ctx ends.
func WriteContext(ctx context.Context, w io.Writer, dir string) error {
	c, err := openContext(dir)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := writeContextDir(ctx, tw, c, ""); err != nil {
		return err
	}
	return tw.Close()
}

// writeContextDir writes the entries of the context's directory rel,
// and those beneath it.
func writeContextDir(ctx context.Context, tw *tar.Writer, c *contextFS, rel string) error {
	names, err := c.readDir(rel)
	if err != nil {
		return fmt.Errorf("build context %s: %w", rel, err)
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		child := joinRel(rel, n)
		if strings.HasPrefix(n, ".wh.") {
			return fmt.Errorf("build context: %s: a name starting with .wh. cannot be sent (layer tars mark deletions so)", child)
		}
		e, err := c.lstat(child)
		if err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		hdr := &tar.Header{Name: child, Mode: int64(e.mode.Perm()), ModTime: e.mtime, Format: tar.FormatPAX}
		if e.mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if e.mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if e.mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch t := e.mode.Type(); {
		case t == fs.ModeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, child+"/"
		case t == fs.ModeSymlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		case t.IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.size
		case t == fs.ModeSocket:
			continue
		default:
			return fmt.Errorf("build context: %s is a %v, which cannot be sent", child, t)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := writeContextDir(ctx, tw, c, child); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := copyContextFile(tw, e.host, e.size, child); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyContextFile copies the size bytes of the context's file at host
// (never through a symlink) into tw.
func copyContextFile(tw *tar.Writer, host string, size int64, rel string) error {
	f, err := openRegular(host)
	switch {
	case errors.Is(err, errNotRegular):
		return fmt.Errorf("build context: %s is no longer a regular file", rel)
	case err != nil:
		return fmt.Errorf("build context: %s: %w", rel, err)
	}
	defer f.Close()
	n, err := io.Copy(tw, io.LimitReader(f, size))
	switch {
	case err != nil:
		return fmt.Errorf("build context: %s: %w", rel, err)
	case n != size:
		return fmt.Errorf("build context: %s shrank while it was read", rel)
	}
	return nil
}
