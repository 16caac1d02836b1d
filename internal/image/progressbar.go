package image

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ProgressBar draws pull progress as one terminal line, redrawn in place
// with a carriage return at most ten times a second and ended with a
// newline when every layer is complete.
type ProgressBar struct {
	w      io.Writer
	mu     sync.Mutex // guards the fields below
	layers map[int]LayerProgress
	count  int
	last   time.Time
	ended  bool
}

// NewProgressBar returns a bar that draws on w.
func NewProgressBar(w io.Writer) *ProgressBar {
	return &ProgressBar{w: w, layers: make(map[int]LayerProgress)}
}

// Update records a layer's progress and redraws when it is time to. It
// is safe for concurrent use.
func (b *ProgressBar) Update(p LayerProgress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.layers[p.Index] = p
	b.count = p.Count
	complete := 0
	var done, total int64
	for _, l := range b.layers {
		if l.Complete {
			complete++
		}
		done += l.Done
		total += max(l.Total, 0)
	}
	all := complete == b.count
	if !all && !p.Complete && time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	const width = 30
	filled := width
	if total > 0 && !all {
		filled = int(min(done, total) * width / total)
	}
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(b.w, "\r[%s] %s / %s  %d/%d layers", bar, mib(done), mib(total), complete, b.count)
	if all {
		fmt.Fprintln(b.w)
		b.ended = true
	}
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
