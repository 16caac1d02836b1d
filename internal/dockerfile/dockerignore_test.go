package dockerfile

import "testing"

func TestDockerignore(t *testing.T) {
	rules, err := parseDockerignore([]byte("# comment\n\n*.log\n/build\n!build/keep\n**/*.tmp\n!important.tmp\n./docs/*.md\n"))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"a.log":           true,
		"dir/a.log":       false, // *.log is relative to the root
		"build":           true,
		"build/out":       true, // under an excluded directory
		"build/keep":      false,
		"build/keep/deep": false, // an exception covers what it holds
		"x.tmp":           true,
		"a/b/c.tmp":       true, // ** is any number of directories, none included
		"important.tmp":   false,
		"docs/a.md":       true,
		"docs/sub/a.md":   false,
		"src/main.go":     false,
	} {
		if got := rules.excluded(p); got != want {
			t.Errorf("excluded(%q) = %v, want %v", p, got, want)
		}
	}
	if !rules.exceptions {
		t.Error("exceptions not noticed")
	}
	if _, err := parseDockerignore([]byte("ok\n[bad\n")); err == nil {
		t.Error("a malformed pattern was accepted")
	}
}
