package helper

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
)

// A network client that closes a stream sends TLS's close_notify, then
// hangs up; one that half-closes it (CloseWrite) sends close_notify and
// goes on reading. The helper cannot tell the two apart from the stream,
// so it half-closes the sandbox's side and waits for the sandbox to end
// its own, which a sandbox that keeps its end open never does: the stream
// would stay, holding its slot, long after the client had gone. What
// tells them apart is the TCP connection beneath: a client that
// half-closed sends nothing more and keeps it open, one that closed ends
// it.

// hangUpWatch is a network client's end of a stream: once its TLS side
// has ended cleanly, a read of the TCP connection beneath (raw) waits for
// the client to hang up for good, and hangUp is called then.
type hangUpWatch struct {
	net.Conn
	raw    net.Conn
	hangUp func()
	once   sync.Once
	wg     sync.WaitGroup // the watch; done once raw's read has ended and hangUp returned
}

func (c *hangUpWatch) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == io.EOF {
		c.once.Do(func() {
			c.wg.Go(func() {
				c.raw.Read(make([]byte, 1)) // ends at the client's hang-up, or when the stream closes raw
				c.hangUp()
			})
		})
	}
	return n, err
}

// CloseWrite half-closes the client's end where it can, as
// netutil.Splice asks; where it cannot, it closes it, as Splice would.
func (c *hangUpWatch) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// tlsRaw returns the TCP connection beneath c when c is a TLS connection
// (perhaps with bytes read ahead before it), and nil otherwise.
func tlsRaw(c net.Conn) net.Conn {
	for {
		switch cc := c.(type) {
		case *tls.Conn:
			return cc.NetConn()
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			return nil
		}
	}
}
