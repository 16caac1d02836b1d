package fsutil

import (
	"context"
	"io"
)

// ContextReader reads from R until Ctx ends, then returns Ctx's error:
// a long copy (a file of gigabytes, a sparse entry's holes) stops at a
// deadline or a cancel between reads.
type ContextReader struct {
	Ctx context.Context
	R   io.Reader
}

// Read reads from R, or returns Ctx's error once it has ended.
func (c *ContextReader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}
