package vm

import (
	"bytes"
	"strings"
	"testing"
)

// TestCPIOGolden checks the newc encoding byte for byte.
func TestCPIOGolden(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	if err := c.Dir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.File("d/f", 0o644, 3, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if err := c.Symlink("l", "d/f"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	hdr := func(ino, mode, nlink, size, namesize int) string {
		return "070701" + hex8(ino) + hex8(mode) + hex8(0) + hex8(0) + hex8(nlink) + hex8(0) + hex8(size) +
			hex8(0) + hex8(0) + hex8(0) + hex8(0) + hex8(namesize) + hex8(0)
	}
	want := hdr(1, 0o40755, 2, 0, 2) + "d\x00" + // 110+2 = 112: aligned
		hdr(2, 0o100644, 1, 3, 4) + "d/f\x00" + "\x00\x00" + "abc\x00" + // 110+4 → 116; data 3 → 4
		hdr(3, 0o120777, 1, 3, 2) + "l\x00" + "d/f\x00" +
		hdr(0, 0, 1, 0, 11) + "TRAILER!!!\x00" + "\x00\x00\x00" // 121 → 124
	if got := buf.String(); got != want {
		t.Errorf("archive:\n got %q\nwant %q", got, want)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("length %d not a multiple of 4", buf.Len())
	}
}

func hex8(n int) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[n&15]
		n >>= 4
	}
	return string(b)
}

func TestCPIOErrors(t *testing.T) {
	c := newCPIOWriter(&bytes.Buffer{})
	for _, name := range []string{"", "/abs", "a/../b", "a//b", "nul\x00"} {
		if err := c.Dir(name, 0o755); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if err := c.File("short", 0o644, 10, strings.NewReader("abc")); err == nil {
		t.Error("a file shorter than its size accepted")
	}
	if err := c.File("big", 0o644, 1<<32, strings.NewReader("")); err == nil {
		t.Error("a file over 4 GiB accepted")
	}
	c.Close()
	if err := c.Dir("late", 0o755); err == nil {
		t.Error("write after Close accepted")
	}
}
