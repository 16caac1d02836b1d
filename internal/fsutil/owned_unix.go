//go:build unix

package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A path no other host user controls is one where every directory from /
// belongs to this user or root and is writable by no one else unless
// sticky, and every symlink on the way is this user's or root's: whoever
// owns a directory on the way could rename what is below it and put a
// directory or link of their own in its place, so a check of the last
// component alone proves nothing.

// MkdirOwned makes the directory dir with mode 0700, and its missing
// parents with 0700, unless it exists, and checks with CheckOwned(dir,
// true) that no other host user controls it or any directory above it.
// Missing directories are made only below one already checked, so nothing
// is made where another user chose. It returns the first check's or
// Mkdir's error.
func MkdirOwned(dir string) error {
	parent := filepath.Dir(dir)
	if err := CheckOwned(parent, false); errors.Is(err, fs.ErrNotExist) {
		have := parent
		for have != "/" {
			if _, err := os.Lstat(have); err == nil {
				break
			}
			have = filepath.Dir(have)
		}
		if err := CheckOwned(have, false); err != nil {
			return err
		}
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return err
		}
		if err := CheckOwned(parent, false); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return CheckOwned(dir, true)
}

// CheckOwned checks every directory from / to path, following symlinks
// as the kernel would (at most 40): each must belong to this user or
// root and be writable by no other user unless sticky (a directory of the
// user's own primary group may be group-writable, as a per-user group's
// home is), and each symlink must be this user's or root's. With mine,
// path itself must be this user's, whatever its mode (the caller makes it
// private). The error names the component at fault; one for a missing
// component matches fs.ErrNotExist.
func CheckOwned(path string, mine bool) error {
	me, myGroup := os.Geteuid(), os.Getegid()
	fail := func(p, format string, args ...any) error {
		return fmt.Errorf("%s: %s %s", path, p, fmt.Sprintf(format, args...))
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return fmt.Errorf("%s: %w", path, &fs.PathError{Op: "stat", Path: "/", Err: err})
	}
	cur, rest, links := "/", strings.Split(path, "/"), 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		if err := unix.Lstat(next, &st); err != nil {
			return fmt.Errorf("%s: %w", path, &fs.PathError{Op: "lstat", Path: next, Err: err})
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if int(st.Uid) != me && st.Uid != 0 {
				return fail(next, "is a symlink of uid %d, not of this user (%d) or root", st.Uid, me)
			}
			if links++; links > 40 {
				return fail(next, "leads through more than 40 symlinks")
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fail(next, "is not a directory")
		}
		cur = next
		if mine && len(rest) == 0 {
			break
		}
		if int(st.Uid) != me && st.Uid != 0 {
			return fail(next, "belongs to uid %d, not to this user (%d) or root", st.Uid, me)
		}
		sticky := st.Mode&unix.S_ISVTX != 0
		ownGroup := int(st.Uid) == me && int(st.Gid) == myGroup && privateGroup(me, myGroup)
		if !sticky && (st.Mode&0o002 != 0 || st.Mode&0o020 != 0 && !ownGroup) {
			return fail(next, "can be changed by other users (mode %#o)", st.Mode&0o7777)
		}
	}
	if mine && int(st.Uid) != me {
		return fail(cur, "belongs to uid %d, not to this user (%d)", st.Uid, me)
	}
	return nil
}

// privateGroup reports whether the group gid is the user uid's own, as
// the per-user groups of umask 002 systems are: named as the user, with
// no other member and no other user's primary group (/etc/group,
// /etc/passwd). A shared primary group (SUSE's users) is not: its other
// members could change a group-writable directory. Anything unknown
// counts as shared.
func privateGroup(uid, gid int) bool {
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return false
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		return false
	}
	return groupIsPrivate(string(passwd), string(group), uid, gid)
}

// groupIsPrivate is privateGroup on the contents of /etc/passwd and
// /etc/group.
func groupIsPrivate(passwd, group string, uid, gid int) bool {
	user := ""
	for _, line := range strings.Split(passwd, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		switch {
		case f[2] == strconv.Itoa(uid):
			user = f[0]
		case f[3] == strconv.Itoa(gid):
			return false // another user's primary group too
		}
	}
	if user == "" {
		return false
	}
	for _, line := range strings.Split(group, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[2] != strconv.Itoa(gid) {
			continue
		}
		if f[0] != user {
			return false
		}
		for _, m := range strings.Split(f[3], ",") {
			if m != "" && m != user {
				return false
			}
		}
		return true
	}
	return false
}
