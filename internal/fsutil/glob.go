package fsutil

import "path"

// MatchElems reports whether the path elements elems match the pattern
// elements pat: each pattern element matches one path element as
// path.Match has it, and "**" matches zero or more elements. A malformed
// pattern element matches nothing.
func MatchElems(pat, elems []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return true
			}
			for i := 0; i <= len(elems); i++ {
				if MatchElems(pat[1:], elems[i:]) {
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
