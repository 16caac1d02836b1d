package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/netutil"
)

// netListener is a listener the host holds by handle (the streamed path).
type netListener struct {
	ln net.Listener
}

func (l *netListener) release() { l.ln.Close() }

func (a *agent) registerNet() {
	ipc.Route(a.mux, ipc.MsgNetListen, func(req *ipc.Request, m *ipc.ListenReq) (ipc.ListenAns, error) {
		ln, err := listen(m.Network, sandboxAddr(m.Network, m.Addr))
		if err != nil {
			return ipc.ListenAns{}, err
		}
		ans := ipc.ListenAns{Addr: ln.Addr().String()}
		if m.WantFD && req.CanPassDescriptors() {
			f, err := socketFile(ln)
			if ul, ok := ln.(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false) // the socket lives on in the host
			}
			ln.Close() // the host's copy keeps the socket
			if err != nil {
				return ipc.ListenAns{}, err
			}
			req.SendFiles(f)
			return ans, nil
		}
		ans.Handle = a.handles.add(&netListener{ln: ln})
		return ans, nil
	})
	ipc.Route(a.mux, ipc.MsgListenerAccept, func(req *ipc.Request, m *ipc.HandleReq) (ipc.ConnAns, error) {
		l, err := lookup[*netListener](a.handles, m.Handle)
		if err != nil {
			return ipc.ConnAns{}, err
		}
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
			return ipc.ConnAns{}, ctx.Err()
		}
		if r.err != nil {
			return ipc.ConnAns{}, r.err
		}
		return streamConn(req, r.c), nil
	})
	ipc.Route(a.mux, ipc.MsgListenerClose, func(_ *ipc.Request, m *ipc.HandleReq) (ipc.Empty, error) {
		l, err := take[*netListener](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		return ipc.Empty{}, l.ln.Close()
	})
	ipc.Route(a.mux, ipc.MsgListenerAddr, func(_ *ipc.Request, m *ipc.HandleReq) (ipc.StringAns, error) {
		l, err := lookup[*netListener](a.handles, m.Handle)
		if err != nil {
			return ipc.StringAns{}, err
		}
		return ipc.StringAns{Value: l.ln.Addr().String()}, nil
	})
	ipc.Route(a.mux, ipc.MsgNetDial, func(req *ipc.Request, m *ipc.DialReq) (ipc.ConnAns, error) {
		ctx := req.Context()
		if m.TimeoutNs > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(m.TimeoutNs))
			defer cancel()
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, m.Network, sandboxAddr(m.Network, m.Addr))
		if err != nil {
			return ipc.ConnAns{}, err
		}
		if m.WantFD && req.CanPassDescriptors() {
			f, err := socketFile(c)
			ans := ipc.ConnAns{Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()}
			c.Close()
			if err != nil {
				return ipc.ConnAns{}, err
			}
			req.SendFiles(f)
			return ans, nil
		}
		return streamConn(req, c), nil
	})
	ipc.Route(a.mux, ipc.MsgNetListenPacket, func(req *ipc.Request, m *ipc.ListenReq) (ipc.StringAns, error) {
		pc, err := net.ListenPacket(m.Network, sandboxAddr(m.Network, m.Addr))
		if err != nil {
			return ipc.StringAns{}, err
		}
		ans := ipc.StringAns{Value: pc.LocalAddr().String()}
		if m.WantFD && req.CanPassDescriptors() {
			f, err := socketFile(pc)
			pc.Close()
			if err != nil {
				return ipc.StringAns{}, err
			}
			req.SendFiles(f)
			return ans, nil
		}
		req.HijackWith(func(stream net.Conn) { go pumpPackets(stream, pc) })
		return ans, nil
	})
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

// streamConn answers with a connection's addresses and then joins the
// call's connection to it.
func streamConn(req *ipc.Request, c net.Conn) ipc.ConnAns {
	req.HijackWith(func(stream net.Conn) { go netutil.Splice(stream, c) })
	return ipc.ConnAns{Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()}
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
