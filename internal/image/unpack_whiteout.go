package image

import (
	"archive/tar"
	"strings"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"golang.org/x/sys/unix"
)

// The whiteouts of a layer: the files and directories it removes from the
// layers below it.

// whiteout turns .wh.NAME into a 0/0 character device NAME and
// .wh..wh..opq into the opaque xattr of its directory.
func (u *unpacker) whiteout(hdr *tar.Header, name, parent, base string) error {
	if hdr.Typeflag == tar.TypeDir {
		return entryErr(hdr.Name, ErrInvalidEntry, "whiteout is a directory")
	}
	if err := u.openParent(hdr.Name, parent, hdr.ModTime); err != nil {
		return err
	}
	if base == layertar.WhOpaque {
		if u.opaque[parent] {
			return entryErr(hdr.Name, ErrUnsafeEntry, "duplicate entry")
		}
		return u.markOpaque(hdr.Name, parent)
	}
	if strings.HasPrefix(base, layertar.WhMeta) {
		u.skip(hdr, "AUFS metadata")
		return nil
	}
	target := base[len(layertar.WhPrefix):]
	if target == "" || target == "." || target == ".." {
		return entryErr(hdr.Name, ErrInvalidEntry, "whiteout of %q", target)
	}
	tname := layertar.JoinName(parent, target)
	switch prev := u.nodes[tname]; {
	case prev == kindWhiteout:
		return entryErr(hdr.Name, ErrUnsafeEntry, "duplicate entry")
	case prev.isDir():
		// This layer both removes and makes the directory: it replaces
		// the one below.
		return u.markOpaque(hdr.Name, tname)
	case prev != kindNone:
		// This layer's own entry hides the one below already.
		return nil
	}
	if err := unix.Mknodat(u.parentFD, target, unix.S_IFCHR, 0); err != nil {
		return u.sysErr(hdr.Name, "mknod whiteout", err)
	}
	if err := u.chown(&tar.Header{Name: hdr.Name}, func(uid, gid int) error {
		return unix.Fchownat(u.parentFD, target, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return err
	}
	if err := u.times(hdr, u.parentFD, target, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	u.nodes[tname] = kindWhiteout
	return nil
}

// markOpaque sets the opaque xattr on the directory name.
func (u *unpacker) markOpaque(entry, name string) error {
	fd, err := openBeneath(u.rootFD, name)
	if err != nil {
		return u.sysErr(entry, "open", err)
	}
	defer unix.Close(fd)
	if err := unix.Lsetxattr(fsutil.FDPath(fd, "."), layertar.XattrOpaque, []byte("y"), 0); err != nil {
		return u.sysErr(entry, "mark opaque", err)
	}
	if u.opaque == nil {
		u.opaque = make(map[string]bool)
	}
	u.opaque[name] = true
	return nil
}
