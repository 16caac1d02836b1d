package image

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

// prepareRoot makes the store's root when it is missing and refuses one
// another host user could control, before anything is read or made in it:
// a root reached through a directory of theirs (they could swap what is
// below it) or through one they may write that is not sticky, or through
// a symlink of theirs (a link planted at a shared path such as
// /tmp/cc-cache, or at one of its parents, pointing at a directory of
// root's, would have had that made private and filled), and a root that
// is not this user's. Every directory on the way is checked, from /, and
// missing ones are made only below a checked one, so nothing is made
// where another user chose.
func prepareRoot(root string) error {
	parent := filepath.Dir(root)
	if err := checkChain(parent, false); errors.Is(err, fs.ErrNotExist) {
		have := parent
		for have != "/" {
			if _, err := os.Lstat(have); err == nil {
				break
			}
			have = filepath.Dir(have)
		}
		if err := checkChain(have, false); err != nil {
			return err
		}
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return fmt.Errorf("opening layer store: %w", err)
		}
		if err := checkChain(parent, false); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := os.Mkdir(root, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("opening layer store: %w", err)
	}
	return checkChain(root, true)
}

// checkChain checks every directory from / to path, following symlinks
// as the kernel would (at most 40): each must belong to this user or
// root, and be writable by no other user unless sticky (a directory of
// the user's own primary group may be group-writable, as a per-user
// group's home is), and each symlink must be this user's or root's. With
// isRoot, path itself must be this user's, whatever its mode (the store
// makes it private). An error for a missing component matches
// fs.ErrNotExist.
func checkChain(path string, isRoot bool) error {
	me, myGroup := os.Geteuid(), os.Getegid()
	fail := func(p, format string, args ...any) error {
		return fmt.Errorf("opening layer store %s: %s %s", path, p, fmt.Sprintf(format, args...))
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return fmt.Errorf("opening layer store %s: %w", path, &fs.PathError{Op: "stat", Path: "/", Err: err})
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
			return fmt.Errorf("opening layer store %s: %w", path, &fs.PathError{Op: "lstat", Path: next, Err: err})
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
				return fmt.Errorf("opening layer store %s: %w", path, err)
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
		if isRoot && len(rest) == 0 {
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
	if isRoot && int(st.Uid) != me {
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

// makePrivate makes the store's root 0700, whoever made it: layers keep
// the setuid and setgid bits of their images (a sandbox needs them), and
// sandboxes' writable layers live below it too, so no other host user may
// reach any of it. Sandboxes and VMs reach their layers through
// descriptors the host opens, never by walking these directories.
func (s *Store) makePrivate() error {
	fi, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("opening layer store: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(s.root, 0o700); err != nil {
		return fmt.Errorf("opening layer store: %s is open to other users (%v) and cannot be made private: %w", s.root, fi.Mode().Perm(), err)
	}
	s.log.Info("layer store made private to its owner", "dir", s.root, "was", fi.Mode().Perm())
	return nil
}
