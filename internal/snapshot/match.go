package snapshot

import (
	"fmt"
	"path"
	"strings"
)

// matcher tells whether a path of the sandbox is excluded. A pattern with
// a slash matches the whole path (which starts with "/"), "**" standing
// for any number of path elements and the rest as path.Match has it; a
// pattern without a slash matches any path element. A directory that
// matches is excluded with everything in it.
type matcher struct {
	patterns []string
}

func newMatcher(patterns []string) (*matcher, error) {
	for _, p := range patterns {
		if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
	}
	return &matcher{patterns: patterns}, nil
}

// match reports whether p (a clean absolute path) is excluded.
func (m *matcher) match(p string) bool {
	for _, pat := range m.patterns {
		if !strings.Contains(pat, "/") {
			if ok, _ := path.Match(pat, path.Base(p)); ok {
				return true
			}
			continue
		}
		if !strings.HasPrefix(pat, "/") {
			pat = "/" + pat
		}
		if globMatch(strings.Split(strings.TrimPrefix(pat, "/"), "/"), strings.Split(strings.TrimPrefix(p, "/"), "/")) {
			return true
		}
	}
	return false
}

// globMatch matches path elements against pattern elements, "**" matching
// zero or more elements.
func globMatch(pat, elems []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return true
			}
			for i := 0; i <= len(elems); i++ {
				if globMatch(pat[1:], elems[i:]) {
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
