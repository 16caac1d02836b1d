package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// A host mount is bound with MS_REC, so every mount below the host path
// comes along; a flag set on the top mount alone leaves those writable
// and setuid-capable. The flags are therefore set on the whole tree at
// once.

// Attributes of host mounts: none may carry setuid programs or device
// nodes into the sandbox; a read-only one is read-only all the way down.
const (
	writableAttr = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	readOnlyAttr = writableAttr | unix.MOUNT_ATTR_RDONLY
)

// restrictTree sets attr on the mount at fd and on every mount below it
// with one mount_setattr(AT_RECURSIVE) call. A kernel without it (before
// 5.12) gets each mount remounted in turn (remountTree).
func restrictTree(fd int, attr uint64) error {
	err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attr})
	if errors.Is(err, unix.ENOSYS) {
		return remountTree(fd, attr)
	}
	if err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// restrictMount sets attr on the mount at fd alone, with mount_setattr or,
// on a kernel without it (gVisor's too), with a remount: for a bind made
// without MS_REC, which has no mount below it.
func restrictMount(fd int, attr uint64) error {
	err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: attr})
	if errors.Is(err, unix.ENOSYS) {
		return remount(fd, msFlags(attr))
	}
	if err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// msFlags returns the mount(2) flags of the MOUNT_ATTR_ attributes a host
// mount is given.
func msFlags(attr uint64) uintptr {
	var ms uintptr
	for _, f := range []struct {
		attr uint64
		ms   uintptr
	}{{unix.MOUNT_ATTR_RDONLY, unix.MS_RDONLY}, {unix.MOUNT_ATTR_NOSUID, unix.MS_NOSUID}, {unix.MOUNT_ATTR_NODEV, unix.MS_NODEV}} {
		if attr&f.attr != 0 {
			ms |= f.ms
		}
	}
	return ms
}

// remountTree sets attr on the mount at fd and on every mount below it by
// remounting each, keeping the flags a remount must keep. The mounts are
// found in /proc/self/mountinfo by their mount points, and each is opened
// without following any symlink before it is remounted through its
// descriptor. It runs before anything in the sandbox does.
func remountTree(fd int, attr uint64) error {
	top, err := os.Readlink(fdPath(fd))
	if err != nil {
		return err
	}
	points, err := mountsBelow(top)
	if err != nil {
		return err
	}
	ms := msFlags(attr)
	for _, p := range points {
		how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		mfd, err := unix.Openat2(unix.AT_FDCWD, p, how)
		if err != nil {
			return fmt.Errorf("opening the mount at %s: %w", p, err)
		}
		err = remount(mfd, ms)
		unix.Close(mfd)
		if err != nil {
			return fmt.Errorf("remounting %s: %w", p, err)
		}
	}
	return nil
}

// remount adds flags to the mount at fd, keeping those it has: a
// remount must repeat the flags the kernel locked.
func remount(fd int, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	return unix.Mount("", fdPath(fd), "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
}

// mountsBelow returns the mount points at top and below it, parents before
// children, from /proc/self/mountinfo.
func mountsBelow(top string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var points []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := fsutil.UnescapeMountinfo(fields[4])
		if p == top || strings.HasPrefix(p, strings.TrimSuffix(top, "/")+"/") {
			points = append(points, p)
		}
	}
	return points, sc.Err()
}
