package fsutil

import "path"

// MatchElems reports whether the path elements elems match the pattern
// elements pat: each pattern element matches one path element as
// path.Match has it, and "**" matches zero or more elements. A malformed
// pattern element matches nothing. It walks the elements once, keeping
// the set of pattern positions reached so far, so its cost is at most
// len(pat) × len(elems) element matches whatever the pattern (a pattern
// of many "**" cannot make it backtrack exponentially).
func MatchElems(pat, elems []string) bool {
	reached := make([]bool, len(pat)+1) // reached[i]: pat[:i] matches what was read
	next := make([]bool, len(pat)+1)
	reached[0] = true
	skipStars(reached, pat)
	for _, e := range elems {
		clear(next)
		moved := false
		for i, p := range pat {
			if !reached[i] {
				continue
			}
			if p == "**" {
				next[i], moved = true, true // ** takes e and can take more
			} else if ok, _ := path.Match(p, e); ok {
				next[i+1], moved = true, true
			}
		}
		if !moved {
			return false
		}
		skipStars(next, pat)
		reached, next = next, reached
	}
	return reached[len(pat)]
}

// skipStars marks, after each reached "**", the position past it: "**"
// may match no element.
func skipStars(reached []bool, pat []string) {
	for i, p := range pat {
		if reached[i] && p == "**" {
			reached[i+1] = true
		}
	}
}
