package netutil

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// Batched copying: a source that hands out data in small pieces (a TLS
// connection returns at most one 16 KB record per Read) would cost the
// destination one write, and its reader one wakeup, per piece. copyBatched
// reads and writes in two goroutines instead: while a write is in flight
// the pieces that arrive meanwhile queue up, and the next write takes all
// of them at once (one writev on a socket). An idle writer still sends
// each piece as soon as it arrives, so interactive streams wait no longer
// than with io.Copy. A copy whose writer takes nothing holds at most a
// queue and a batch of pieces, 2 MB: a network helper bounds a client's
// streams by that. (A queue of 64 pieces was no faster, 16 slower: see
// BenchmarkRemote/ReadFile100MB and BenchmarkEgressDownload.)
const (
	batchPiece = 32 << 10 // one Read's buffer
	batchQueue = 32       // pieces read ahead of the writer, and at most in one write: 1 MB each
)

var piecePool = sync.Pool{New: func() any { b := make([]byte, batchPiece); return &b }}

// copyBatched copies src to dst until src ends or either fails, as
// io.Copy does, and returns the bytes written and the first error (nil at
// src's EOF). queue is how many pieces it reads ahead, and writes at most
// at once. A failed write closes src, so the reading goroutine ends
// before copyBatched returns.
func copyBatched(dst io.Writer, src io.ReadCloser, queue int) (int64, error) {
	pieces := make(chan *[]byte, queue)
	stop := make(chan struct{}) // closed when the writer gives up
	var rerr error              // the reader's error; read after pieces closes
	go func() {
		defer close(pieces)
		for {
			bp := piecePool.Get().(*[]byte)
			n, err := src.Read((*bp)[:batchPiece])
			if n > 0 {
				*bp = (*bp)[:n]
				select {
				case pieces <- bp:
				case <-stop:
					piecePool.Put(bp)
					return
				}
			} else {
				piecePool.Put(bp)
			}
			if err != nil {
				if err != io.EOF {
					rerr = err
				}
				return
			}
		}
	}()
	var (
		written int64
		batch   []*[]byte
		bufs    net.Buffers
	)
	release := func() {
		for _, bp := range batch {
			*bp = (*bp)[:cap(*bp)]
			piecePool.Put(bp)
		}
		batch, bufs = batch[:0], bufs[:0]
	}
	for bp := range pieces {
		batch = append(batch, bp)
	more:
		for len(batch) < queue {
			select {
			case bp, ok := <-pieces:
				if !ok {
					break more
				}
				batch = append(batch, bp)
			default:
				break more
			}
		}
		for _, bp := range batch {
			bufs = append(bufs, *bp)
		}
		n, err := bufs.WriteTo(dst)
		written += n
		release()
		if err != nil {
			close(stop)
			src.Close()
			for bp := range pieces { // the reader ends at its next piece
				piecePool.Put(bp)
			}
			return written, err
		}
	}
	return written, rerr
}

// kernelCopies reports whether io.Copy from src to dst can move the data
// in the kernel (splice): both are raw sockets or files.
func kernelCopies(dst io.Writer, src io.Reader) bool {
	_, rawSrc := src.(syscall.Conn)
	_, rawDst := dst.(syscall.Conn)
	return rawSrc && rawDst
}
