package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// netListener is a listener the host holds by handle (the streamed path).
type netListener struct {
	ln net.Listener
}

func (l *netListener) release() { l.ln.Close() }

func (a *agent) registerNet() {
	a.handle(ipc.MsgNetListen, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		network, addr, wantFD, err := decodeNetAddr(dec)
		if err != nil {
			return nil, err
		}
		ln, err := listen(network, addr)
		if err != nil {
			return nil, err
		}
		local := ln.Addr().String()
		if wantFD && req.CanPassDescriptors() {
			f, err := socketFile(ln)
			if ul, ok := ln.(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false) // the socket lives on in the host
			}
			ln.Close() // the host's copy keeps the socket
			if err != nil {
				return nil, err
			}
			resp := ok(func(e *ipc.Encoder) { e.Uint64(0); e.String(local) })
			resp.Files = []*os.File{f}
			return resp, nil
		}
		h := a.handles.add(&netListener{ln: ln})
		return ok(func(e *ipc.Encoder) { e.Uint64(h); e.String(local) }), nil
	})
	handleOn(a, ipc.MsgListenerAccept, lookup[*netListener], func(req *ipc.Request, l *netListener, _ *ipc.Decoder) (*ipc.Response, error) {
		ctx := req.Context()
		type result struct {
			c   net.Conn
			err error
		}
		got := make(chan result, 1)
		go func() {
			c, err := l.ln.Accept()
			got <- result{c, err}
		}()
		var r result
		select {
		case r = <-got:
		case <-ctx.Done():
			// The caller gave up: a connection accepted now goes back.
			go func() {
				if r := <-got; r.c != nil {
					r.c.Close()
				}
			}()
			return nil, ctx.Err()
		}
		if r.err != nil {
			return nil, r.err
		}
		return streamResponse(r.c), nil
	})
	handleOn(a, ipc.MsgListenerClose, take[*netListener], func(req *ipc.Request, l *netListener, _ *ipc.Decoder) (*ipc.Response, error) {
		return ok(nil), l.ln.Close()
	})
	handleOn(a, ipc.MsgListenerAddr, lookup[*netListener], func(req *ipc.Request, l *netListener, _ *ipc.Decoder) (*ipc.Response, error) {
		return ok(func(e *ipc.Encoder) { e.String(l.ln.Addr().String()) }), nil
	})
	a.handle(ipc.MsgNetDial, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		network, err := dec.String()
		if err != nil {
			return nil, err
		}
		addr, err := dec.String()
		if err != nil {
			return nil, err
		}
		timeout, err := dec.Int64()
		if err != nil {
			return nil, err
		}
		wantFD, _ := dec.Bool()
		ctx := req.Context()
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(timeout))
			defer cancel()
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, sandboxAddr(network, addr))
		if err != nil {
			return nil, err
		}
		if wantFD && req.CanPassDescriptors() {
			f, err := socketFile(c)
			local, remote := c.LocalAddr().String(), c.RemoteAddr().String()
			c.Close()
			if err != nil {
				return nil, err
			}
			resp := ok(func(e *ipc.Encoder) { e.String(local); e.String(remote) })
			resp.Files = []*os.File{f}
			return resp, nil
		}
		return streamResponse(c), nil
	})
	a.handle(ipc.MsgNetListenPacket, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		network, addr, wantFD, err := decodeNetAddr(dec)
		if err != nil {
			return nil, err
		}
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			return nil, err
		}
		local := pc.LocalAddr().String()
		if wantFD && req.CanPassDescriptors() {
			f, err := socketFile(pc)
			pc.Close()
			if err != nil {
				return nil, err
			}
			resp := ok(func(e *ipc.Encoder) { e.String(local) })
			resp.Files = []*os.File{f}
			return resp, nil
		}
		resp := ok(func(e *ipc.Encoder) { e.String(local) })
		resp.Hijack = func(stream net.Conn) { go pumpPackets(stream, pc) }
		return resp, nil
	})
}

func decodeNetAddr(dec *ipc.Decoder) (network, addr string, wantFD bool, err error) {
	if network, err = dec.String(); err != nil {
		return
	}
	if addr, err = dec.String(); err != nil {
		return
	}
	wantFD, err = dec.Bool()
	return network, sandboxAddr(network, addr), wantFD, err
}

// sandboxAddr turns a unix socket path into a sandbox path; other addresses
// are used as they are.
func sandboxAddr(network, addr string) string {
	if network == "unix" || network == "unixpacket" {
		if addr != "" && addr[0] != '@' {
			return sandboxPath(addr)
		}
	}
	return addr
}

// listen listens inside the sandbox's network (or file system, for unix).
func listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	return ln, nil
}

// socketFile returns a duplicate of a socket's descriptor.
func socketFile(s any) (*os.File, error) {
	if f, ok := s.(interface{ File() (*os.File, error) }); ok {
		return f.File()
	}
	return nil, fmt.Errorf("cannot pass a %T", s)
}

// streamResponse answers with a connection's addresses and then joins the
// call's connection to it.
func streamResponse(c net.Conn) *ipc.Response {
	resp := ok(func(e *ipc.Encoder) { e.String(c.LocalAddr().String()); e.String(c.RemoteAddr().String()) })
	resp.Hijack = func(stream net.Conn) { go splice(stream, c) }
	return resp
}

// splice copies both ways between the host's stream and a connection in the
// sandbox, passing half closes on, and closes both when both ways are done
// or either fails.
func splice(stream, c net.Conn) {
	var once sync.Once
	closeBoth := func() { once.Do(func() { stream.Close(); c.Close() }) }
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if err != nil {
			closeBoth()
		} else {
			closeWrite(dst)
		}
		done <- struct{}{}
	}
	go pipe(c, stream)
	go pipe(stream, c)
	<-done
	<-done
	closeBoth()
}

// closeWrite half-closes a connection, or closes it when it cannot.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}

// pumpPackets carries datagrams between a packet socket in the sandbox and
// the host's stream, framed as netproto.go says.
func pumpPackets(stream net.Conn, pc net.PacketConn) {
	defer stream.Close()
	defer pc.Close()
	go func() {
		for {
			addr, payload, err := ipc.ReadPacketFrame(stream)
			if err != nil {
				pc.Close()
				return
			}
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				continue
			}
			pc.WriteTo(payload, ua)
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if err := ipc.WritePacketFrame(stream, from.String(), buf[:n]); err != nil {
			return
		}
	}
}
