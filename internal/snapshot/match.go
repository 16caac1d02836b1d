package snapshot

import (
	"fmt"
	"path"
	"strings"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// matcher tells whether a path of the sandbox is excluded. A pattern with
// a slash matches the whole path (which starts with "/"), "**" standing
// for any number of path elements and the rest as path.Match has it; a
// pattern without a slash matches any path element. A directory that
// matches is excluded with everything in it. The walk carries a
// matchState down the tree, so that an entry costs a step of each pattern
// (fsutil.ElemsStep), not a match of its whole path.
type matcher struct {
	names []string   // patterns without a slash: of an element
	paths [][]string // patterns with a slash, as elements
}

// matchState is where a directory's path stands in each slash pattern:
// the pattern positions its elements reach (nil: none, the pattern cannot
// match below it).
type matchState [][]bool

func newMatcher(patterns []string) (*matcher, error) {
	m := &matcher{}
	for _, p := range patterns {
		if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
		if !strings.Contains(p, "/") {
			m.names = append(m.names, p)
			continue
		}
		m.paths = append(m.paths, strings.Split(strings.TrimPrefix(p, "/"), "/"))
	}
	return m, nil
}

// root returns the state of the tree's root, "/".
func (m *matcher) root() matchState {
	st := make(matchState, len(m.paths))
	for i, pat := range m.paths {
		st[i] = fsutil.ElemsStart(pat)
	}
	return st
}

// enter returns the state of the entry name of a directory in state st,
// and whether the entry is excluded.
func (m *matcher) enter(st matchState, name string) (matchState, bool) {
	for _, pat := range m.names {
		if ok, _ := path.Match(pat, name); ok {
			return nil, true
		}
	}
	if len(m.paths) == 0 {
		return st, false
	}
	next := make(matchState, len(m.paths))
	for i, pat := range m.paths {
		if st[i] == nil {
			continue
		}
		next[i] = fsutil.ElemsStep(pat, st[i], name)
		if fsutil.ElemsDone(pat, next[i]) {
			return nil, true
		}
	}
	return next, false
}
