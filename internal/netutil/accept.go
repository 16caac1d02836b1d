package netutil

import (
	"errors"
	"syscall"
	"time"
)

// WaitOutAccept reports whether err, from a listener's Accept, is a lack
// of room that passes as connections end (the process's or the system's
// open files limit, buffers, memory, or a connection aborted before it
// was taken) and, if so, waits before the next Accept, as net/http's
// server does: pause doubles from 5 ms to a second across calls, and the
// caller sets it back to 0 at the next success. It returns false at
// once, having waited for nothing, for any other error, and when done is
// closed while it waits.
func WaitOutAccept(err error, pause *time.Duration, done <-chan struct{}) bool {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) && !errors.Is(err, syscall.ENOBUFS) &&
		!errors.Is(err, syscall.ENOMEM) && !errors.Is(err, syscall.ECONNABORTED) {
		return false
	}
	*pause = min(max(2**pause, 5*time.Millisecond), time.Second)
	t := time.NewTimer(*pause)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}
