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
		if fsutil.MatchElems(strings.Split(strings.TrimPrefix(pat, "/"), "/"), strings.Split(strings.TrimPrefix(p, "/"), "/")) {
			return true
		}
	}
	return false
}
