//go:build unix

package fsutil

import "testing"

// TestGroupIsPrivate: a directory of the user's own primary group may be
// group-writable on the way to a private directory only when that group is the user's alone
// (a per-user group); a primary group others share (SUSE's users), one
// with other members, one named otherwise, or one not found is not.
func TestGroupIsPrivate(t *testing.T) {
	const passwd = "root:x:0:0:root:/root:/bin/bash\n" +
		"alice:x:1000:1000::/home/alice:/bin/sh\n" +
		"bob:x:1001:100::/home/bob:/bin/sh\n" +
		"carol:x:1002:100::/home/carol:/bin/sh\n" +
		"dave:x:1003:1003::/home/dave:/bin/sh\n" +
		"erin:x:1004:1004::/home/erin:/bin/sh\n"
	const group = "root:x:0:\n" +
		"alice:x:1000:alice\n" +
		"users:x:100:\n" +
		"dave:x:1003:mallory\n" +
		"staff:x:1004:\n"
	for _, c := range []struct {
		who      string
		uid, gid int
		want     bool
	}{
		{"root's own group", 0, 0, true},
		{"a per-user group", 1000, 1000, true},
		{"a primary group others share", 1001, 100, false},
		{"a per-user group with another member", 1003, 1003, false},
		{"a group named otherwise", 1004, 1004, false},
		{"a group not listed", 1000, 4242, false},
		{"a user not listed", 4242, 1000, false},
	} {
		if got := groupIsPrivate(passwd, group, c.uid, c.gid); got != c.want {
			t.Errorf("%s (uid %d, gid %d): %v, want %v", c.who, c.uid, c.gid, got, c.want)
		}
	}
}
