package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/netutil"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// MTU is the MTU of the sandbox's egress device.
const MTU = 65000

// dialTimeout bounds the outbound dial of one flow.
const dialTimeout = 30 * time.Second

// udpIdle closes a UDP flow after this long without traffic.
const udpIdle = 60 * time.Second

// maxTCPFlows and maxUDPFlows bound the flows one sandbox has through the
// stack at once (DNS flows count as UDP): each holds host descriptors,
// goroutines and buffers that the sandbox's own limits do not count, and
// a flow the sandbox has forgotten (a UDP socket it closed, a connection
// whose peer stays silent) lives on until it idles out or its far end
// closes. A flow past the bound is refused: a TCP connection is reset,
// a UDP datagram dropped. Many flows of one sandbox then starve its own
// egress, not the host's descriptors or another sandbox's.
const (
	maxTCPFlows = 256
	maxUDPFlows = 256
)

// What the host holds for one TCP flow whose ends both stop reading,
// outside every limit of the sandbox's, is the stack's send and receive
// buffers and, each way, the splice's read-ahead and the write in flight:
// 6 MB with the netstack's defaults and the splice's, for speed. A
// sandbox's first fullFlows flows at once get those; flows past them get
// smallBuffer each and smallQueue pieces (of 32 KB), about 1 MB a flow,
// so that one sandbox's flows hold some 300 MB at most, not 1.5 GB.
const (
	fullFlows   = 16
	smallBuffer = 128 << 10
	smallQueue  = 4
)

// gatewayMAC is the link address of the stack on the sandbox's device.
const gatewayMAC = tcpip.LinkAddress("\x02\x00\x00\x00\x02\x02")

// Stack is a running user-space stack serving one sandbox's device.
type Stack struct {
	s        *stack.Stack
	link     *os.File
	dial     DialFunc
	resolver *net.Resolver // answers the sandbox's DNS queries
	log      *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per flow

	mu    sync.Mutex
	flows map[io.Closer]struct{} // guarded by mu
	tcp   int                    // TCP flows being dialed or spliced, guarded by mu
	udp   int                    // UDP flows, guarded by mu

	linkGone chan struct{} // closed when the device stops giving frames (its far end closed)
}

// Start attaches a stack to link, the host's descriptor of the sandbox's
// TAP device (ethernet frames), and serves its flows through dial and its
// DNS queries from resolver (nil: net.DefaultResolver). The stack owns
// link and closes it on Close.
func Start(link *os.File, dial DialFunc, resolver *net.Resolver, log *slog.Logger) (*Stack, error) {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fd, err := rawFd(link)
	if err != nil {
		link.Close()
		return nil, err
	}
	linkGone := make(chan struct{})
	var goneOnce sync.Once
	ep, err := fdbased.New(&fdbased.Options{
		FDs:            []int{fd},
		MTU:            MTU,
		EthernetHeader: true,
		Address:        gatewayMAC,
		ClosedFunc:     func(tcpip.Error) { goneOnce.Do(func() { close(linkGone) }) },
	})
	if err != nil {
		link.Close()
		return nil, fmt.Errorf("egress: attaching to the device: %w", err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	ctx, cancel := context.WithCancel(context.Background())
	st := &Stack{s: s, link: link, dial: dial, resolver: resolver, log: log, ctx: ctx, cancel: cancel, flows: map[io.Closer]struct{}{}, linkGone: linkGone}
	fail := func(what string, e tcpip.Error) (*Stack, error) {
		cancel()
		s.Destroy()
		link.Close()
		return nil, fmt.Errorf("egress: %s: %v", what, e)
	}
	const nic = 1
	// Handlers first: packets may arrive as soon as the NIC exists.
	// The window a handshake offers is smallBuffer's; handleTCP widens
	// it for the sandbox's first flows.
	tf := tcp.NewForwarder(s, smallBuffer, 1024, st.handleTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tf.HandlePacket)
	uf := udp.NewForwarder(s, st.handleUDP)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, uf.HandlePacket)
	s.SetRouteTable([]tcpip.Route{{Destination: header4Any(), NIC: nic}})
	if e := s.CreateNIC(nic, ep); e != nil {
		return fail("creating the NIC", e)
	}
	if e := s.AddProtocolAddress(nic, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(Gateway.As4()).WithPrefix(),
	}, stack.AddressProperties{}); e != nil {
		return fail("adding the gateway address", e)
	}
	// Accept and answer for every destination: each flow is terminated here.
	if e := s.SetPromiscuousMode(nic, true); e != nil {
		return fail("promiscuous mode", e)
	}
	if e := s.SetSpoofing(nic, true); e != nil {
		return fail("spoofing", e)
	}
	return st, nil
}

// rawFd returns link's descriptor number without changing its blocking
// mode (File.Fd would make it blocking; the link endpoint polls it).
func rawFd(link *os.File) (int, error) {
	rc, err := link.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("egress: %w", err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, fmt.Errorf("egress: %w", err)
	}
	return fd, nil
}

// header4Any is the IPv4 subnet that matches every address.
func header4Any() tcpip.Subnet {
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes(make([]byte, 4)))
	return sn
}

// addrPort converts a netstack address and port.
func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip.Unmap(), port)
}

// track registers a flow's closer; it returns false once the stack closes.
func (st *Stack) track(c io.Closer) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ctx.Err() != nil {
		return false
	}
	st.flows[c] = struct{}{}
	return true
}

func (st *Stack) untrack(c io.Closer) {
	st.mu.Lock()
	delete(st.flows, c)
	st.mu.Unlock()
}

// takeFlow counts one more flow in *n, unless max are open already; it
// returns how many are open with it, 0 when it did not count it. release
// gives the flow back.
func (st *Stack) takeFlow(n *int, max int) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	if *n >= max {
		return 0
	}
	*n++
	return *n
}

func (st *Stack) release(n *int) {
	st.mu.Lock()
	*n--
	st.mu.Unlock()
}

// handleTCP dials out for a new connection from the sandbox, and completes
// the sandbox's handshake only if that worked: a refused destination is a
// reset, seen at once.
func (st *Stack) handleTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst := addrPort(id.LocalAddress, id.LocalPort)
	nth := st.takeFlow(&st.tcp, maxTCPFlows)
	if nth == 0 {
		st.log.Debug("egress: too many flows", "dst", dst, "max", maxTCPFlows)
		r.Complete(true)
		return
	}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		defer st.release(&st.tcp)
		if st.ctx.Err() != nil {
			r.Complete(true)
			return
		}
		ctx, cancel := context.WithTimeout(st.ctx, dialTimeout)
		out, err := st.dial(ctx, "tcp", dst.String())
		cancel()
		if err != nil {
			st.log.Debug("egress: refused", "dst", dst, "err", err)
			r.Complete(true)
			return
		}
		var wq waiter.Queue
		ep, terr := r.CreateEndpoint(&wq)
		r.Complete(false)
		if terr != nil {
			out.Close()
			return
		}
		queue := 0 // the splice's own
		if nth > fullFlows {
			ep.SocketOptions().SetSendBufferSize(smallBuffer, true)
			ep.SocketOptions().SetReceiveBufferSize(smallBuffer, true)
			queue = smallQueue
		} else {
			// The handshake offered smallBuffer's window (see Start).
			ep.SocketOptions().SetReceiveBufferSize(tcp.DefaultReceiveBufferSize, true)
		}
		in := gonet.NewTCPConn(&wq, ep)
		st.splice(in, out, queue)
		st.settle(ep)
	}()
}

// lingerMax bounds how long a flow whose splice has ended keeps its slot
// while the sandbox takes what was queued for it; then it is reset.
const lingerMax = 30 * time.Second

// settle waits, with the flow still counted, until the sandbox has
// acknowledged what the stack queued for it on ep (which the splice
// closed): a graceful close keeps the endpoint and its queued bytes (up
// to its send buffer) until then, and a sandbox that never reads (its
// window shut) would otherwise have the stack keep them for flow after
// flow, past the bound. Past lingerMax, or when the stack closes, it
// resets the connection, which frees them.
func (st *Stack) settle(ep tcpip.Endpoint) {
	if !holdsData(ep) {
		return
	}
	deadline := time.NewTimer(lingerMax)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for holdsData(ep) {
		select {
		case <-tick.C:
		case <-deadline.C:
			ep.Abort()
			return
		case <-st.ctx.Done():
			ep.Abort()
			return
		}
	}
}

// holdsData reports whether a closed endpoint may still hold data for the
// sandbox: it has not had everything it sent acknowledged.
func holdsData(ep tcpip.Endpoint) bool {
	switch tcp.EndpointState(ep.State()) {
	case tcp.StateEstablished, tcp.StateCloseWait, tcp.StateFinWait1, tcp.StateClosing, tcp.StateLastAck:
		return true
	}
	return false
}

// splice copies both ways until both directions end, passing half closes,
// with queue pieces read ahead each way (0: the splice's default).
func (st *Stack) splice(a, b net.Conn, queue int) {
	if !st.track(a) {
		a.Close()
		b.Close()
		return
	}
	defer st.untrack(a)
	if !st.track(b) {
		a.Close()
		b.Close()
		return
	}
	defer st.untrack(b)
	netutil.SpliceQueue(a, b, queue)
}

// handleUDP serves a new UDP flow from the sandbox: DNS for the gateway,
// and a relay through the dialer for everything else.
func (st *Stack) handleUDP(r *udp.ForwarderRequest) bool {
	id := r.ID()
	dst := addrPort(id.LocalAddress, id.LocalPort)
	if st.takeFlow(&st.udp, maxUDPFlows) == 0 {
		st.log.Debug("egress: too many flows", "dst", dst, "max", maxUDPFlows)
		return true // dropped: handled, so that no port-unreachable answers it
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		st.release(&st.udp)
		return false
	}
	in := gonet.NewUDPConn(&wq, ep)
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		defer st.release(&st.udp)
		if !st.track(in) {
			in.Close()
			return
		}
		defer st.untrack(in)
		defer in.Close()
		if dst.Addr() == Gateway && dst.Port() == 53 {
			st.serveDNS(in)
			return
		}
		st.relayUDP(in, dst)
	}()
	return true
}

// relayUDP carries datagrams between the sandbox's flow and a host socket.
func (st *Stack) relayUDP(in *gonet.UDPConn, dst netip.AddrPort) {
	ctx, cancel := context.WithTimeout(st.ctx, dialTimeout)
	out, err := st.dial(ctx, "udp", dst.String())
	cancel()
	if err != nil {
		st.log.Debug("egress: refused", "dst", dst, "err", err)
		return
	}
	if !st.track(out) {
		out.Close()
		return
	}
	defer st.untrack(out)
	defer out.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 65535)
		for {
			src.SetReadDeadline(time.Now().Add(udpIdle))
			n, err := src.Read(buf)
			if err != nil {
				break
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// LinkGone reports whether the device has stopped giving frames: its far
// end closed (a network helper's relay that ended) or it failed. The
// stack then serves nothing until it is closed and another started.
func (st *Stack) LinkGone() bool {
	select {
	case <-st.linkGone:
		return true
	default:
		return false
	}
}

// Close stops the stack: it ends every flow, detaches from the device and
// closes it (which removes a TAP device), and waits for its goroutines.
func (st *Stack) Close() error {
	st.cancel()
	st.mu.Lock()
	for c := range st.flows {
		c.Close()
	}
	st.mu.Unlock()
	st.s.Destroy()
	st.wg.Wait()
	err := st.link.Close()
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}
