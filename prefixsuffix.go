package sandbox

import "fmt"

// headTail keeps the first and the last n bytes written to it, and counts
// what it drops in between: the standard error that Output attaches to an
// ExitError, bounded however much a command prints.
type headTail struct {
	n       int
	head    []byte
	tail    []byte // the latest bytes after head; trimmed to n now and then
	dropped int64
}

func (w *headTail) Write(p []byte) (int, error) {
	written := len(p)
	if room := w.n - len(w.head); room > 0 {
		k := min(room, len(p))
		w.head = append(w.head, p[:k]...)
		p = p[k:]
	}
	w.tail = append(w.tail, p...)
	if len(w.tail) > 2*w.n {
		cut := len(w.tail) - w.n
		w.dropped += int64(cut)
		w.tail = append(w.tail[:0:0], w.tail[cut:]...)
	}
	return written, nil
}

// Bytes returns the head, then a note of what was dropped, then the tail.
func (w *headTail) Bytes() []byte {
	tail := w.tail
	dropped := w.dropped
	if len(tail) > w.n {
		dropped += int64(len(tail) - w.n)
		tail = tail[len(tail)-w.n:]
	}
	out := append([]byte(nil), w.head...)
	if dropped > 0 {
		out = fmt.Appendf(out, "\n... omitting %d bytes ...\n", dropped)
	}
	return append(out, tail...)
}
