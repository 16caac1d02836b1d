// Package linktree makes trees of hard-linked files for the tests of
// what copies a tree and keeps its links (layers, snapshots).
package linktree

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Pairs makes n files of one byte in dir, f00, f01, ..., each with a
// second link, g00, g01, ...; it fails the test on any error.
func Pairs(t testing.TB, dir string, n int) {
	t.Helper()
	for i := range n {
		f := filepath.Join(dir, fmt.Sprintf("f%02d", i))
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(f, filepath.Join(dir, fmt.Sprintf("g%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
}
