package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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

// maxDockerignore bounds a .dockerignore file.
const maxDockerignore = 1 << 20

// readDockerignore reads the .dockerignore file of the context directory
// dir: a regular file of at most maxDockerignore bytes. A symlink is
// followed within the context only (an absolute target starts at its
// root, ".." stops there), never to a host path, and a pipe is never
// waited on: the context may be a layer a network helper's client sent.
// It returns an error matching fs.ErrNotExist when there is none, and one
// naming no host path when it is something else.
func readDockerignore(dir string) ([]byte, error) {
	c := newContextFS(dir, nil)
	rel, err := resolve(c, ".dockerignore", true)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	e, err := c.rawLstat(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf(".dockerignore: %w", errors.Unwrap(err))
	}
	if !e.mode.IsRegular() {
		return nil, fmt.Errorf(".dockerignore is a %v; it must be a regular file", e.mode.Type())
	}
	data, err := readRegular(e.host, maxDockerignore)
	switch {
	case errors.Is(err, errNotRegular):
		return nil, errors.New(".dockerignore changed while it was opened; it must be a regular file")
	case errors.Is(err, errTooLong):
		return nil, fmt.Errorf(".dockerignore is longer than %d bytes", maxDockerignore)
	case err != nil:
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return data, nil
}
