package image

import (
	"archive/tar"
	"strconv"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/layertar"
	"golang.org/x/sys/unix"
)

// The metadata of unpacked entries: owners, extended attributes, times.

// hostIDs returns the host ids for an entry's container ids.
func (u *unpacker) hostIDs(entry string, uid, gid int) (int, int) {
	h := func(id int, conv func(uint32) (uint32, bool)) int {
		if id >= 0 && id <= 0xFFFFFFFF {
			if hid, ok := conv(uint32(id)); ok {
				return int(hid)
			}
		}
		if u.overflowIDs == 0 {
			u.firstOverID = entry
		}
		u.overflowIDs++
		hid, _ := conv(layertar.OverflowID)
		return int(hid)
	}
	return h(uid, u.ids.HostUID), h(gid, u.ids.HostGID)
}

// chown sets an entry's owner through set, as root only.
func (u *unpacker) chown(hdr *tar.Header, set func(uid, gid int) error) error {
	if u.single {
		return nil
	}
	uid, gid := u.hostIDs(hdr.Name, hdr.Uid, hdr.Gid)
	if err := set(uid, gid); err != nil {
		return u.sysErr(hdr.Name, "chown", err)
	}
	return nil
}

// owner records the container owner in an xattr when ownership cannot be
// kept (unprivileged mode), on fd or else on the path p.
func (u *unpacker) owner(hdr *tar.Header, fd int, p string) error {
	if !u.single || hdr.Uid == 0 && hdr.Gid == 0 {
		return nil
	}
	v := []byte(strconv.Itoa(hdr.Uid) + ":" + strconv.Itoa(hdr.Gid))
	return u.setXattr(hdr.Name, fd, p, layertar.XattrOwner, v)
}

// xattrs copies an entry's PAX xattrs, less the overlay's and the store's
// own, onto fd or else the path p.
func (u *unpacker) xattrs(hdr *tar.Header, fd int, p string) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, layertar.PaxXattrPrefix)
		if !ok {
			continue
		}
		if layertar.InternalXattr(name) {
			u.log.Debug("layer entry xattr dropped", "entry", hdr.Name, "xattr", name)
			continue
		}
		if err := u.setXattr(hdr.Name, fd, p, name, []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

func (u *unpacker) setXattr(entry string, fd int, p, name string, value []byte) error {
	var err error
	if fd >= 0 {
		err = unix.Fsetxattr(fd, name, value, 0)
	} else {
		err = unix.Lsetxattr(p, name, value, 0)
	}
	if err == nil {
		return nil
	}
	if xattrUnsupported(err) {
		if u.stats.Lost == 0 {
			u.lostFirst = entry + " (" + name + ")"
		}
		u.stats.Lost++
		return nil
	}
	return u.sysErr(entry, "setxattr "+name, err)
}

// times sets an entry's access and modification times on base in the
// directory dirfd.
func (u *unpacker) times(hdr *tar.Header, dirfd int, base string, flags int) error {
	ts := timespecs(hdr.AccessTime, hdr.ModTime)
	if err := unix.UtimesNanoAt(dirfd, base, ts, flags); err != nil {
		return u.sysErr(hdr.Name, "set times", err)
	}
	return nil
}

// timespecs returns utimensat's pair; a zero access time takes the
// modification time.
func timespecs(atime, mtime time.Time) []unix.Timespec {
	if atime.IsZero() {
		atime = mtime
	}
	return []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
}

// finishDirs applies owner, mode and times to every directory, the
// deepest first, now that nothing more is created in them.
func (u *unpacker) finishDirs() error {
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		rel := d.name
		if rel == "" {
			rel = "."
		}
		if !u.single {
			uid, gid := u.hostIDs(d.name+"/", d.uid, d.gid)
			if err := unix.Fchownat(u.rootFD, rel, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return u.sysErr(d.name+"/", "chown", err)
			}
		} else if d.uid != 0 || d.gid != 0 {
			v := []byte(strconv.Itoa(d.uid) + ":" + strconv.Itoa(d.gid))
			if err := u.setXattr(d.name+"/", -1, u.rootPathOf(rel), layertar.XattrOwner, v); err != nil {
				return err
			}
		}
		if err := unix.Fchmodat(u.rootFD, rel, d.mode, 0); err != nil {
			return u.sysErr(d.name+"/", "chmod", err)
		}
		if !d.mtime.IsZero() {
			if err := unix.UtimesNanoAt(u.rootFD, rel, timespecs(d.atime, d.mtime), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return u.sysErr(d.name+"/", "set times", err)
			}
		}
	}
	return nil
}
