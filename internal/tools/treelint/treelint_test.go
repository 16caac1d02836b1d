package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check parses one testdata file and returns its findings.
func check(t *testing.T, name string) []finding {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	return checkFile(fset, f)
}

// TestRefusesPaths shows the check failing on the mistake it exists for:
// os.Open(filepath.Join(upper, ...)) and its relatives.
func TestRefusesPaths(t *testing.T) {
	got := check(t, "bad/bad.go.txt")
	var msgs []string
	for _, f := range got {
		msgs = append(msgs, f.msg)
	}
	want := []string{"os.Open", "unix.Lstat", "unix.Openat(AT_FDCWD", "filepath.WalkDir"}
	if len(got) != len(want) {
		t.Fatalf("findings %q, want %d", msgs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(msgs[i], w) {
			t.Errorf("finding %d: %q, want %s...", i, msgs[i], w)
		}
	}
}

func TestAllowsDescriptors(t *testing.T) {
	if got := check(t, "good/good.go.txt"); len(got) != 0 {
		t.Errorf("findings in descriptor-only code: %v", got)
	}
}

// TestTreePackagesClean runs the check on the packages make lint gives it.
func TestTreePackagesClean(t *testing.T) {
	for _, dir := range []string{"../../untrusted", "../../snapshot"} {
		got, err := checkDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range got {
			t.Errorf("%s: %s", f.pos, f.msg)
		}
	}
}
