package netutil

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// smallReader hands out its data 1000 bytes at a time, as a TLS
// connection hands out records.
type smallReader struct{ r io.Reader }

func (s smallReader) Read(b []byte) (int, error) { return s.r.Read(b[:min(len(b), 1000)]) }
func (smallReader) Close() error                 { return nil }

// TestCopyBatched: every byte arrives in order, and the count is right.
func TestCopyBatched(t *testing.T) {
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	var out bytes.Buffer
	n, err := copyBatched(&out, smallReader{bytes.NewReader(data)}, batchQueue)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("copied %d of %d bytes, equal %v, %v", n, len(data), bytes.Equal(out.Bytes(), data), err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(b []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("broken")
	}
	f.after--
	return len(b), nil
}

// blockingReader blocks until closed, like a connection with no data.
type blockingReader struct{ closed chan struct{} }

func (b *blockingReader) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	p[0] = 1
	return 1, nil
}
func (b *blockingReader) Close() error { close(b.closed); return nil }

// TestCopyBatchedWriteError: a failed write returns its error, and the
// reading goroutine has ended (src closed) by then.
func TestCopyBatchedWriteError(t *testing.T) {
	src := &blockingReader{closed: make(chan struct{})}
	_, err := copyBatched(&failWriter{after: 3}, src, batchQueue)
	if err == nil || err.Error() != "broken" {
		t.Fatalf("err = %v, want the writer's", err)
	}
	select {
	case <-src.closed:
	default:
		t.Fatal("src was not closed")
	}
}

// gateWriter blocks every write until open closes.
type gateWriter struct{ open chan struct{} }

func (g gateWriter) Write(b []byte) (int, error) { <-g.open; return len(b), nil }

// countingReader hands out full pieces of zeros and counts them, until
// stop is set.
type countingReader struct {
	n    atomic.Int64
	stop atomic.Bool
}

func (c *countingReader) Read(b []byte) (int, error) {
	if c.stop.Load() {
		return 0, io.EOF
	}
	c.n.Add(int64(len(b)))
	return len(b), nil
}
func (*countingReader) Close() error { return nil }

// TestCopyBatchedBounded: against a writer that does not take what it is
// given, copyBatched holds at most 2 MB (a queue and a batch of pieces)
// and the piece on its way, as a network helper's bound on a client's
// streams counts on (see helper.maxAgentStreams).
func TestCopyBatchedBounded(t *testing.T) {
	src := &countingReader{}
	dst := gateWriter{open: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyBatched(dst, src, batchQueue)
	}()
	const bound = 2<<20 + batchPiece
	for src.n.Load() < 1<<20 { // the queue fills at least
		runtime.Gosched()
	}
	time.Sleep(50 * time.Millisecond) // a reader without a bound would be far past it by now
	if n := src.n.Load(); n > bound {
		t.Errorf("read %d bytes ahead of a blocked writer, want at most %d", n, bound)
	}
	src.stop.Store(true)
	close(dst.open)
	<-done
}
