package ipc

import (
	"math/bits"
	"sync"
)

// Large payloads are read into pooled buffers on the server side, so that a
// stream of big requests does not turn into a stream of big allocations (and
// the garbage collection they cause). A buffer goes back to the pool when
// its handler returns.

// minPooledSize is the smallest payload read into a pooled buffer.
const minPooledSize = 64 << 10

// bufPools holds one pool per power-of-two size class from minPooledSize up
// to MaxMessageSize.
var bufPools [27]sync.Pool // index = log2 of the size; 2^26 = MaxMessageSize

// sizeClass returns the pool index for a payload of n bytes.
func sizeClass(n int) int {
	return bits.Len(uint(n - 1))
}

// getBuf returns a slice of length n, pooled when n is large.
func getBuf(n int) (buf []byte, pooled *[]byte) {
	if n < minPooledSize {
		return make([]byte, n), nil
	}
	class := sizeClass(n)
	if p, ok := bufPools[class].Get().(*[]byte); ok {
		return (*p)[:n], p
	}
	b := make([]byte, 1<<class)
	return b[:n], &b
}

// putBuf returns a pooled buffer; the caller must not use it afterwards.
func putBuf(p *[]byte) {
	if p == nil {
		return
	}
	bufPools[sizeClass(cap(*p))].Put(p)
}
