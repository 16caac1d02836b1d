package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCapture writes streams of many lengths in random pieces and checks
// that capture keeps exactly the first and last half of its bound.
func TestCapture(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, max := range []int{2, 10, 101, 4096} {
		for _, n := range []int{0, 1, max / 2, max - 1, max, max + 1, 3 * max, 10*max + 7} {
			data := make([]byte, n)
			for i := range data {
				data[i] = 'a' + byte(r.IntN(26))
			}
			c := newCapture(max)
			for rest := data; len(rest) > 0; {
				k := min(len(rest), 1+r.IntN(max))
				if w, err := c.Write(rest[:k]); w != k || err != nil {
					t.Fatalf("Write = %d, %v", w, err)
				}
				rest = rest[k:]
			}
			got, cut := c.text()
			half := max / 2
			want := string(data)
			if n > 2*half {
				want = string(data[:half]) + fmt.Sprintf("\n[... %d bytes left out ...]\n", n-2*half) + string(data[n-half:])
			}
			if got != want || cut != (n > 2*half) {
				t.Errorf("max %d, %d bytes: got %q (cut %v), want %q", max, n, got, cut, want)
			}
		}
	}
	c := newCapture(8)
	c.Write([]byte("ab\xffcd"))
	if got, _ := c.text(); !bytes.Equal([]byte(got), []byte("ab\uFFFDcd")) || !strings.Contains(got, "\uFFFD") {
		t.Errorf("invalid UTF-8 came back as %q", got)
	}
}
