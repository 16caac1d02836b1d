package fsutil

import (
	"strings"
	"testing"
)

func TestMatchElems(t *testing.T) {
	for _, c := range []struct {
		pat, path string
		want      bool
	}{
		{"a/b", "a/b", true},
		{"a/*", "a/b", true},
		{"a/*", "a/b/c", false},
		{"**", "a/b/c", true},
		{"**/c", "c", true},
		{"**/c", "a/b/c", true},
		{"a/**/c", "a/c", true},
		{"a/**/c", "a/x/y/c", true},
		{"a/**/c", "a/x/y/d", false},
		{"a/**", "a", true},
		{"*.go", "x.go", true},
		{"*.go", "d/x.go", false},
		{"[", "[", false}, // malformed: matches nothing
	} {
		if got := MatchElems(strings.Split(c.pat, "/"), strings.Split(c.path, "/")); got != c.want {
			t.Errorf("MatchElems(%q, %q) = %v, want %v", c.pat, c.path, got, c.want)
		}
	}
}
