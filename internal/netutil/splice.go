// Package netutil holds small connection helpers the SDK's packages share.
package netutil

import (
	"io"
	"net"
)

// Splice copies between a and b both ways until both directions have
// ended, then closes both. When one side reaches EOF, the other is
// half-closed (CloseWrite) where it can be, so the peer sees the end of
// the data and may still answer; an error in either direction, or a side
// that cannot half-close, closes both at once. Between raw sockets the
// kernel moves the data (io.Copy's splice); from anything else (a TLS
// connection) copyBatched gathers the pieces that arrive during a write.
func Splice(a, b net.Conn) { SpliceQueue(a, b, 0) }

// SpliceQueue is Splice with at most queue pieces of 32 KB read ahead in
// each direction (and as many more in the write in flight) where
// copyBatched copies: what one spliced pair may hold when neither end
// reads. A queue of 0 is Splice's.
func SpliceQueue(a, b net.Conn, queue int) {
	if queue <= 0 {
		queue = batchQueue
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		var err error
		if kernelCopies(dst, src) {
			_, err = io.Copy(dst, src)
		} else {
			_, err = copyBatched(dst, src, queue)
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
		} else {
			dst.Close()
			src.Close()
		}
		done <- struct{}{}
	}
	go pipe(a, b)
	go pipe(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}
