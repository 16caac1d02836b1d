package fsutil

import "path"

// Patterns of path elements: each pattern element matches one path
// element as path.Match has it, and "**" matches zero or more elements. A
// malformed pattern element matches nothing. A match is walked one element
// at a time, keeping the set of pattern positions reached so far
// (ElemsStart, ElemsStep, ElemsDone), so it costs at most len(pat) element
// matches per path element whatever the pattern (many "**" cannot make it
// backtrack), and a tree walk can carry the set down instead of matching
// every path from its root.

// ElemsStart returns the positions of pat reached before any element.
func ElemsStart(pat []string) []bool {
	reached := make([]bool, len(pat)+1)
	reached[0] = true
	skipStars(reached, pat)
	return reached
}

// ElemsStep returns the positions of pat reached after the element elem
// from those in reached, or nil when there are none (no path that goes on
// can match); from nil it returns nil.
func ElemsStep(pat []string, reached []bool, elem string) []bool {
	if reached == nil {
		return nil
	}
	var next []bool
	for i, p := range pat {
		if !reached[i] {
			continue
		}
		if next == nil {
			next = make([]bool, len(pat)+1)
		}
		if p == "**" {
			next[i] = true // ** takes elem and can take more
		} else if ok, _ := path.Match(p, elem); ok {
			next[i+1] = true
		}
	}
	if next == nil || !anyTrue(next) {
		return nil
	}
	skipStars(next, pat)
	return next
}

// ElemsDone reports whether reached (from ElemsStart or ElemsStep) takes
// in the whole of pat: the elements read so far match it.
func ElemsDone(pat []string, reached []bool) bool {
	return reached != nil && reached[len(pat)]
}

// MatchElems reports whether the path elements elems match the pattern
// elements pat.
func MatchElems(pat, elems []string) bool {
	reached := ElemsStart(pat)
	for _, e := range elems {
		if reached = ElemsStep(pat, reached, e); reached == nil {
			return false
		}
	}
	return ElemsDone(pat, reached)
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

func anyTrue(b []bool) bool {
	for _, v := range b {
		if v {
			return true
		}
	}
	return false
}
