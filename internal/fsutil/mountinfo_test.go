package fsutil

import "testing"

// TestUnescapeMountinfo: mount points with spaces, tabs, newlines and
// backslashes come escaped in mountinfo; what is not a whole escape stays.
func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/sys/fs/cgroup":    "/sys/fs/cgroup",
		`/a\040b`:           "/a b",
		`/t\011x`:           "/t\tx",
		`/n\012`:            "/n\n",
		`/b\134s`:           `/b\s`,
		`/a\9`:              `/a\9`,
		`/short\04`:         `/short\04`,
		`/a\011b\012c\040d`: "/a\tb\nc d",
	} {
		if got := UnescapeMountinfo(in); got != want {
			t.Errorf("UnescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
