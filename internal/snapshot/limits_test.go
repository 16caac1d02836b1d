//go:build linux

package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/testutil/linktree"
	"github.com/ccsandbox/sandbox/internal/untrusted"
)

// hashWith hashes the tree dir with a copier of the given limits.
func hashWith(t *testing.T, dir string, maxBytes, maxLinkBytes int64) error {
	t.Helper()
	src, err := untrusted.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c := newCopier(&matcher{}, nil)
	c.h, c.dstRoot = sha256.New(), -1
	c.maxBytes, c.maxLinkBytes = maxBytes, maxLinkBytes
	_, _, err = c.tree(context.Background(), src, nil)
	return err
}

// TestCopierLinkLimit: the paths a capture keeps for files of several
// links are counted, with linkCost each, and a tree past the limit fails
// with a short error matching image.ErrTooLarge that names the limit.
func TestCopierLinkLimit(t *testing.T) {
	dir := t.TempDir()
	linktree.Pairs(t, dir, 50)
	perLink := int64(len("/f00") + linkCost)
	if err := hashWith(t, dir, maxFileBytes, 50*perLink); err != nil {
		t.Fatalf("50 links within a limit of 50: %v", err)
	}
	err := hashWith(t, dir, maxFileBytes, 49*perLink)
	if !errors.Is(err, image.ErrTooLarge) || !strings.Contains(err.Error(), "DefaultMaxNameBytes") {
		t.Fatalf("50 links past a limit of 49: %v; want image.ErrTooLarge naming DefaultMaxNameBytes", err)
	}
	if len(err.Error()) > 300 {
		t.Errorf("a %d-byte error: %.300s", len(err.Error()), err)
	}
}

// TestCopierDataLimit: the apparent sizes of a tree's files, holes
// included, hard links counted once, are counted against the limit, and
// a tree past it fails with an error matching image.ErrTooLarge.
func TestCopierDataLimit(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(dir, name), 600<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	if err := hashWith(t, dir, 1200<<10, maxLinkBytes); err != nil {
		t.Fatalf("1200 KiB of files (and a link) within a limit of 1200 KiB: %v", err)
	}
	err := hashWith(t, dir, 1<<20, maxLinkBytes)
	if !errors.Is(err, image.ErrTooLarge) || !strings.Contains(err.Error(), "DefaultMaxBytes") {
		t.Fatalf("1200 KiB of holes past a limit of 1 MiB: %v; want image.ErrTooLarge naming DefaultMaxBytes", err)
	}
}
