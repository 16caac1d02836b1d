package helper

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"
)

// A network client that closes a stream sends TLS's close_notify, then
// hangs up; one that half-closes it (CloseWrite) sends close_notify and
// goes on reading, and may half-close the TCP connection beneath too. The
// helper cannot tell these apart as they happen, so it half-closes the
// sandbox's side and waits for the sandbox to end its own, which a
// sandbox that keeps its end open never does: the stream would stay,
// holding its slot, long after the client had gone. What does tell them
// apart, later, is the TCP connection: the helper's keepalives go on
// being answered by a client that half-closed, while a client that
// closed stops answering once its kernel has let its end go (60 s on
// Linux) and answers with a reset; the connection is then closed on the
// helper's side too, which the watch below sees.

// hangUpEvery is how often a stream whose client has ended its side is
// checked for the client's hang-up.
var hangUpEvery = 5 * time.Second

// hangUpWatch is a network client's end of a stream: once its TLS side
// has ended, the TCP connection beneath (raw) is checked every
// hangUpEvery until it is closed (see tcpClosed), and hangUp is called
// then; the watch ends with the stream (Close).
type hangUpWatch struct {
	net.Conn
	raw    net.Conn
	hangUp func()
	once   sync.Once
	stop   chan struct{} // closed by Close
	closed sync.Once
	wg     sync.WaitGroup // the watch
}

func newHangUpWatch(c, raw net.Conn, hangUp func()) *hangUpWatch {
	return &hangUpWatch{Conn: c, raw: raw, hangUp: hangUp, stop: make(chan struct{})}
}

func (c *hangUpWatch) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == io.EOF {
		c.once.Do(func() { c.wg.Go(c.watch) })
	}
	return n, err
}

func (c *hangUpWatch) watch() {
	t := time.NewTicker(hangUpEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if tcpClosed(c.raw) {
			c.hangUp()
			return
		}
	}
}

// Close closes the client's end and ends the watch.
func (c *hangUpWatch) Close() error {
	c.closed.Do(func() { close(c.stop) })
	return c.Conn.Close()
}

// CloseWrite half-closes the client's end where it can, as
// netutil.Splice asks; where it cannot, it closes it, as Splice would.
func (c *hangUpWatch) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// beneath returns the connection under c's wrappers (TLS, bytes read
// ahead before it): for a network client's stream, its TCP connection;
// isTLS says whether TLS was among them.
func beneath(c net.Conn) (raw net.Conn, isTLS bool) {
	for {
		switch cc := c.(type) {
		case *tls.Conn:
			c, isTLS = cc.NetConn(), true
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			return c, isTLS
		}
	}
}
