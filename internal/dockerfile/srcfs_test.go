package dockerfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// writeTree makes files (name -> content; a value starting with "->" is
// a symlink) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := cutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

func TestContextGlobAndIgnore(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"a.go": "a", "b.go": "b", "c.txt": "c",
		"sub/d1/x/foo": "foo", "sub/d2/x/foo": "foo2",
		"skip/one": "1", "skip/keep": "k",
		"link": "->sub/d1", "escape": "->../../../../etc",
	})
	rules, _ := parseDockerignore([]byte("skip\n!skip/keep\n"))
	c := newContextFS(dir, rules)
	names := func(ms []match) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.rel)
		}
		return out
	}
	for pattern, want := range map[string][]string{
		"*.go":         {"a.go", "b.go"},
		"sub/*/x/foo":  {"sub/d1/x/foo", "sub/d2/x/foo"},
		"link/x/foo":   {"sub/d1/x/foo"}, // symlinks resolve inside the context
		"skip/*":       {"skip/keep"},
		"nothing*":     nil,
		"/c.txt":       {"c.txt"},
		"../../c.txt":  {"c.txt"}, // ".." stops at the root
		"sub/d1/x/../": {"sub/d1"},
	} {
		got, err := glob(c, pattern)
		if err != nil {
			t.Errorf("%s: %v", pattern, err)
			continue
		}
		if !slices.Equal(names(got), want) {
			t.Errorf("glob(%q) = %q, want %q", pattern, names(got), want)
		}
	}
	// A symlink out of the context leads back inside it.
	if r, err := resolve(c, "escape/passwd", true); err != nil || r != "etc/passwd" {
		t.Errorf("resolve escape/passwd = %q, %v", r, err)
	}
	if _, err := c.lstat("skip/one"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ignored file visible: %v", err)
	}
	if e, err := c.lstat("skip"); err != nil || !e.mode.IsDir() {
		t.Errorf("directory holding an exception: %v %v", e, err)
	}
	if names, _ := c.readDir(""); slices.Contains(names, ".dockerignore") || !slices.Contains(names, "skip") {
		t.Errorf("root listing %q", names)
	}
}
