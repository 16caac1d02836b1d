package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveAllLockedDirs(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(locked, "f"), []byte("x"), 0o644)
	os.Chmod(locked, 0)
	os.Chmod(filepath.Join(dir, "a"), 0o500)
	if err := RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatalf("tree still there: %v", err)
	}
}
