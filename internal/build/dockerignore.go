package build

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// ignoreRules are the patterns of a .dockerignore file, applied as Docker
// applies them: a path is left out when the last pattern that matches it,
// or one of its parent directories, is not an exception ("!pattern").
// Patterns are slash-separated paths relative to the context root, each
// element matched as path.Match does, "**" standing for any number of
// elements (none included).
type ignoreRules struct {
	patterns   []ignorePattern
	exceptions bool // some pattern starts with "!": excluded directories may hold included files
}

type ignorePattern struct {
	elems     []string
	exception bool
}

// parseDockerignore reads the patterns of a .dockerignore file. Blank
// lines and lines starting with "#" are skipped; a malformed pattern is
// an error naming its line.
func parseDockerignore(data []byte) (*ignoreRules, error) {
	r := &ignoreRules{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{}
		if strings.HasPrefix(line, "!") {
			p.exception = true
			line = strings.TrimSpace(line[1:])
		}
		line = strings.TrimPrefix(path.Clean("/"+line), "/")
		if line == "" {
			continue // "/" or "." would mean the whole context: Docker ignores it too
		}
		p.elems = strings.Split(line, "/")
		for _, e := range p.elems {
			if _, err := path.Match(e, ""); err != nil {
				return nil, fmt.Errorf(".dockerignore line %d: pattern %q: %w", n, line, err)
			}
		}
		r.exceptions = r.exceptions || p.exception
		r.patterns = append(r.patterns, p)
	}
	return r, sc.Err()
}

// excluded reports whether the context path rel (clean, relative, "/"
// separated, not "") is left out.
func (r *ignoreRules) excluded(rel string) bool {
	if r == nil || len(r.patterns) == 0 {
		return false
	}
	elems := strings.Split(rel, "/")
	excluded := false
	for _, p := range r.patterns {
		if p.exception != excluded {
			continue // cannot change the outcome
		}
		for n := len(elems); n >= 1; n-- { // the path itself, then its parents
			if fsutil.MatchElems(p.elems, elems[:n]) {
				excluded = !p.exception
				break
			}
		}
	}
	return excluded
}
