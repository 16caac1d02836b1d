package snapshot

import (
	"path"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// matchWhole is how an exclude was first matched: each path whole, from
// the root.
func matchWhole(patterns []string, p string) bool {
	for _, pat := range patterns {
		if !strings.Contains(pat, "/") {
			if ok, _ := path.Match(pat, path.Base(p)); ok {
				return true
			}
			continue
		}
		if fsutil.MatchElems(strings.Split(strings.TrimPrefix(pat, "/"), "/"), strings.Split(strings.TrimPrefix(p, "/"), "/")) {
			return true
		}
	}
	return false
}

// TestMatcherWalk: carried down a walk, the matcher excludes a path
// exactly when matching the path and each of its parents whole excludes
// one of them (a directory goes with what it holds).
func TestMatcherWalk(t *testing.T) {
	patterns := []string{"/tmp/**", "*.log", "__pycache__", "/var/cache/*", "a/**/z", "/b/*/c", "**/deep/**/x"}
	m, err := newMatcher(patterns)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/tmp", "/tmp/a/b", "/x.log", "/d/y.log", "/src/__pycache__/m.pyc", "/var/cache", "/var/cache/apt", "/var/cache/apt/x",
		"/a/z", "/a/q/r/z", "/a/q/r/zz", "/b/q/c", "/b/q/r/c", "/deep/x", "/q/deep/r/s/x", "/q/deep/r/s/y", "/keep/me",
	}
	for _, p := range paths {
		elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
		st, walked := m.root(), false
		for _, e := range elems {
			var excluded bool
			if st, excluded = m.enter(st, e); excluded {
				walked = true
				break
			}
		}
		whole := false
		for i := range elems {
			if matchWhole(patterns, "/"+strings.Join(elems[:i+1], "/")) {
				whole = true
				break
			}
		}
		if walked != whole {
			t.Errorf("%s: excluded by the walk %v, by whole paths %v", p, walked, whole)
		}
	}
}
