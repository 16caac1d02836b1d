package fsutil

import (
	"path"
	"slices"
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

// matchNaive is MatchElems by backtracking, as it was first written: the
// reference the walk must agree with.
func matchNaive(pat, elems []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(elems); i++ {
				if matchNaive(pat[1:], elems[i:]) {
					return true
				}
			}
			return false
		}
		if len(elems) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], elems[0]); !ok {
			return false
		}
		pat, elems = pat[1:], elems[1:]
	}
	return len(elems) == 0
}

// TestMatchElemsAgrees: on every pattern of up to four elements over a
// small alphabet (with "**", "*" and a character class) against every
// path of up to four elements (none included), MatchElems agrees with
// backtracking.
func TestMatchElemsAgrees(t *testing.T) {
	patAlpha := []string{"a", "b", "*", "**", "[ab]"}
	pathAlpha := []string{"a", "b", "c"}
	var seqs func(alpha []string, n int) [][]string
	seqs = func(alpha []string, n int) [][]string {
		if n == 0 {
			return [][]string{{}}
		}
		var out [][]string
		for _, s := range seqs(alpha, n-1) {
			for _, a := range alpha {
				out = append(out, append(slices.Clone(s), a))
			}
		}
		return out
	}
	checked := 0
	for pn := 1; pn <= 4; pn++ {
		for _, pat := range seqs(patAlpha, pn) {
			for en := 0; en <= 4; en++ {
				for _, elems := range seqs(pathAlpha, en) {
					if got, want := MatchElems(pat, elems), matchNaive(pat, elems); got != want {
						t.Fatalf("MatchElems(%q, %q) = %v, backtracking says %v", pat, elems, got, want)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d pattern and path pairs agree", checked)
}

// TestMatchElemsManyStars: a pattern of a thousand "**" against a deep
// path that it does not match (it ends in an element the path lacks)
// returns; backtracking would take on the order of 10^12 steps.
func TestMatchElemsManyStars(t *testing.T) {
	pat := append(slices.Repeat([]string{"**"}, 1000), "never")
	elems := strings.Split("a/b/c/d/e/f/g/h/i/j", "/")
	if MatchElems(pat, elems) {
		t.Error("matched a path without its last element")
	}
	if !MatchElems(pat[:1000], elems) {
		t.Error("a thousand ** did not match a path")
	}
}
