package sandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// The network API of an Instance. A sandbox has a network of its own (only
// the loopback interface unless egress is enabled): Listen puts a listening
// socket there, which processes in the sandbox connect to and the host
// program accepts from; Dial connects from there, reaching servers that run
// in the sandbox. Where the connection to the sandbox carries descriptors
// (the namespace backend), the returned listeners and connections are the
// sandbox's own kernel sockets, used natively (*net.TCPListener,
// *net.TCPConn, ...); otherwise they are streams to sockets the agent holds.
// Errors are *net.OpError.

// Networks each call accepts.
var (
	listenNetworks = []string{"tcp", "tcp4", "tcp6", "unix", "unixpacket"}
	dialNetworks   = []string{"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "unixpacket"}
	packetNetworks = []string{"udp", "udp4", "udp6", "unixgram"}
)

// socketAns is what one of the agent's socket calls brought back: the
// socket itself (f), or on the streamed path the agent's handle of a
// listener or the call's connection, with the socket's addresses.
type socketAns struct {
	f             *os.File
	conn          net.Conn
	handle        uint64
	local, remote string
}

// socketCall runs one of the agent's socket calls, for op on network and
// addr: it refuses a network not in networks and a stopped sandbox, and
// turns every failure into a *net.OpError.
func (i *Instance) socketCall(ctx context.Context, op, network, addr string, networks []string, call func(ctx context.Context) (socketAns, error)) (socketAns, error) {
	if !slices.Contains(networks, network) {
		return socketAns{}, &net.OpError{Op: op, Net: network, Err: net.UnknownNetworkError(network)}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: op, Net: network, Addr: parseAddr(network, addr), Err: err}
	}
	if err := i.alive(); err != nil {
		return socketAns{}, opErr(err)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= 0 {
		return socketAns{}, opErr(os.ErrDeadlineExceeded)
	}
	s, err := call(ctx)
	if err != nil {
		return socketAns{}, opErr(dialErr(ctx, i.remoteErr(err)))
	}
	return s, nil
}

// fromFile makes a native socket of the passed descriptor f, which it
// closes (the socket has its own).
func fromFile[T any](op, network, addr string, f *os.File, mk func(*os.File) (T, error)) (T, error) {
	v, err := mk(f)
	f.Close()
	if err != nil {
		return v, &net.OpError{Op: op, Net: network, Addr: parseAddr(network, addr), Err: err}
	}
	return v, nil
}

// Listen listens on addr inside the sandbox. Networks: "tcp", "tcp4",
// "tcp6", and "unix" or "unixpacket", whose address is a path inside the
// sandbox. Close of the Instance closes the listener.
func (i *Instance) Listen(network, addr string) (net.Listener, error) {
	s, err := i.socketCall(context.Background(), "listen", network, addr, listenNetworks, func(ctx context.Context) (socketAns, error) {
		ans, f, err := i.agent.Listen(ctx, ipc.ListenReq{Network: network, Addr: addr, WantFD: i.fdOK})
		return socketAns{f: f, handle: ans.Handle, local: ans.Addr}, err
	})
	if err != nil {
		return nil, err
	}
	if s.f != nil {
		ln, err := fromFile("listen", network, addr, s.f, net.FileListener)
		if err != nil {
			return nil, err
		}
		i.track(ln)
		return ln, nil
	}
	ln := &streamListener{inst: i, network: network, handle: s.handle, addr: parseAddr(network, s.local)}
	ln.ctx, ln.cancel = context.WithCancel(context.Background())
	i.track(ln)
	return ln, nil
}

// Dial connects to addr from inside the sandbox. Networks: "tcp", "tcp4",
// "tcp6", "udp", "udp4", "udp6", "unix", "unixpacket".
func (i *Instance) Dial(network, addr string) (net.Conn, error) {
	return i.DialContext(context.Background(), network, addr)
}

// DialContext is Dial with a context; its deadline bounds the connect.
func (i *Instance) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s, err := i.socketCall(ctx, "dial", network, addr, dialNetworks, func(ctx context.Context) (socketAns, error) {
		var timeout time.Duration
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		ans, f, conn, err := i.agent.Dial(ctx, ipc.DialReq{Network: network, Addr: addr, TimeoutNs: int64(timeout), WantFD: i.fdOK})
		return socketAns{f: f, conn: conn, local: ans.Local, remote: ans.Remote}, err
	})
	if err != nil {
		return nil, err
	}
	if s.f != nil {
		return fromFile("dial", network, addr, s.f, net.FileConn)
	}
	return newStreamConn(s.conn, network, ipc.ConnAns{Local: s.local, Remote: s.remote}), nil
}

// dialErr prefers the context's error when it ended the call.
func dialErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ipc.ErrTransport)) {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return os.ErrDeadlineExceeded
		}
		return cerr
	}
	return err
}

// ListenPacket listens for datagrams on addr inside the sandbox: "udp",
// "udp4", "udp6", or "unixgram" with a path inside the sandbox. Close of
// the Instance closes it.
func (i *Instance) ListenPacket(network, addr string) (net.PacketConn, error) {
	s, err := i.socketCall(context.Background(), "listen", network, addr, packetNetworks, func(ctx context.Context) (socketAns, error) {
		local, f, conn, err := i.agent.ListenPacket(ctx, ipc.ListenReq{Network: network, Addr: addr, WantFD: i.fdOK})
		return socketAns{f: f, conn: conn, local: local}, err
	})
	if err != nil {
		return nil, err
	}
	var pc net.PacketConn
	if s.f != nil {
		if pc, err = fromFile("listen", network, addr, s.f, net.FilePacketConn); err != nil {
			return nil, err
		}
	} else {
		pc = &streamPacketConn{Conn: s.conn, network: network, laddr: parseAddr(network, s.local)}
	}
	i.track(pc)
	return pc, nil
}

// track remembers a listener or packet socket for Close: nothing can reach
// it once the sandbox is gone, so it must not block its user forever.
func (i *Instance) track(c io.Closer) {
	i.netMu.Lock()
	defer i.netMu.Unlock()
	if i.netClosed {
		c.Close()
		return
	}
	i.sockets = append(i.sockets, c)
}

// closeSockets closes what track remembered.
func (i *Instance) closeSockets() {
	i.netMu.Lock()
	socks := i.sockets
	i.sockets, i.netClosed = nil, true
	i.netMu.Unlock()
	for _, c := range socks {
		c.Close()
	}
}

// parseAddr turns an address string of network into a net.Addr.
func parseAddr(network, addr string) net.Addr {
	switch {
	case strings.HasPrefix(network, "tcp"):
		if a, err := net.ResolveTCPAddr(network, addr); err == nil {
			return a
		}
	case strings.HasPrefix(network, "udp"):
		if a, err := net.ResolveUDPAddr(network, addr); err == nil {
			return a
		}
	case strings.HasPrefix(network, "unix"):
		return &net.UnixAddr{Name: addr, Net: network}
	}
	return stringAddr{network, addr}
}

// stringAddr is a net.Addr that could not be parsed.
type stringAddr struct{ net, addr string }

func (a stringAddr) Network() string { return a.net }
func (a stringAddr) String() string  { return a.addr }
