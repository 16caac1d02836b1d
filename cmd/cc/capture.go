package main

import (
	"fmt"
	"strings"
)

// capture is an io.Writer that keeps the first and the last half of max
// bytes written to it, so that a command's output costs bounded memory and
// both its start and its end (where errors are) survive.
type capture struct {
	half  int
	head  []byte
	tail  []byte // the latest bytes past head, at most 2*half before trimming
	total int64
}

func newCapture(max int) *capture { return &capture{half: max / 2} }

func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	c.total += int64(n)
	if room := c.half - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) >= c.half {
		c.tail = append(c.tail[:0], p[len(p)-c.half:]...)
		return n, nil
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > 2*c.half {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-c.half:]...)
	}
	return n, nil
}

// text returns what was kept as valid UTF-8, with a note of how much was
// left out between head and tail, and whether anything was.
func (c *capture) text() (string, bool) {
	tail := c.tail
	if len(tail) > c.half {
		tail = tail[len(tail)-c.half:]
	}
	omitted := c.total - int64(len(c.head)+len(tail))
	if omitted == 0 {
		return strings.ToValidUTF8(string(c.head)+string(tail), "\uFFFD"), false
	}
	return strings.ToValidUTF8(string(c.head), "\uFFFD") +
		fmt.Sprintf("\n[... %d bytes left out ...]\n", omitted) +
		strings.ToValidUTF8(string(tail), "\uFFFD"), true
}
