package dockerfile

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// ignoreRules are the patterns of a .dockerignore file, or of COPY
// --exclude, matched as Docker and BuildKit match them, with their own
// matcher (github.com/moby/patternmatcher): a path is left out when the
// last pattern that matches it, or one of its parent directories, is not
// an exception ("!pattern"); "**" stands for any number of elements.
type ignoreRules struct {
	exceptions bool // some pattern starts with "!": excluded directories may hold included files

	mu sync.Mutex // the matcher is not safe for concurrent use
	pm *patternmatcher.PatternMatcher
}

// parseDockerignore reads the patterns of a .dockerignore file. Blank
// lines and comments are skipped; a malformed pattern is an error.
func parseDockerignore(data []byte) (*ignoreRules, error) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	r, err := newIgnoreRules(patterns)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return r, nil
}

// newIgnoreRules compiles patterns.
func newIgnoreRules(patterns []string) (*ignoreRules, error) {
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	return &ignoreRules{pm: pm, exceptions: pm.Exclusions()}, nil
}

// excluded reports whether the path rel (clean, relative, "/"
// separated, not "") is left out.
func (r *ignoreRules) excluded(rel string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ok, err := r.pm.MatchesOrParentMatches(rel)
	return err == nil && ok
}
