package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/ccsandbox/sandbox/internal/egress"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Egress: a sandbox has no way out unless asked. With WithNetwork (or
// SetNetworkEnabled at run time) it gets a network device and a default
// route; the host terminates every TCP and UDP flow leaving it in a
// user-space TCP/IP stack and opens the matching connection through a Go
// dialer (WithDialer; DefaultDialer otherwise). DNS inside resolves through
// the host. The sandbox's address is 10.0.2.15/24, its gateway and DNS
// server 10.0.2.2.

// DialFunc opens an outbound connection on behalf of a sandbox: network is
// "tcp" or "udp" and addr an IP:port the sandbox connects to. Return an
// error to refuse the flow (the sandbox then sees its connection reset).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DefaultDialer returns the dialer used without WithDialer: it dials on the
// host and refuses the host's loopback and its own addresses on every
// interface, link-local addresses and the cloud metadata services outside
// them, unspecified, multicast, broadcast and reserved addresses and the
// sandbox's own network, except destinations inside one of allow. Private
// networks (10/8, 172.16/12, 192.168/16, 100.64/10) are not refused.
func DefaultDialer(allow ...netip.Prefix) DialFunc {
	return DialFunc(egress.DefaultDialer(allow...))
}

// WithNetwork starts the sandbox with egress enabled (see
// SetNetworkEnabled).
func WithNetwork() Option {
	return instanceOption(func(o *newOptions) error {
		o.network = true
		return nil
	})
}

// WithDialer sets the dialer every outbound flow of the sandbox goes
// through, for allow-lists, logging, recording or fakes. It does not enable
// egress by itself.
func WithDialer(d DialFunc) Option {
	return instanceOption(func(o *newOptions) error {
		if d == nil {
			return errors.New("WithDialer: nil dialer")
		}
		o.dialer = d
		return nil
	})
}

// WithDNSResolver sets the resolver that answers the sandbox's DNS queries
// (A and AAAA, asked of its gateway); without it, net.DefaultResolver, the
// host program's, answers them, outside the dialer. A resolver whose Dial
// goes through your dialer (net.Resolver{PreferGo: true, Dial: ...}) puts
// DNS under the same policy as every other flow; one whose Dial refuses
// every nameserver gives the sandbox no names at all (each query fails
// with SERVFAIL), so that nothing it spells in a name leaves the host. A
// nil resolver is an error.
func WithDNSResolver(r *net.Resolver) Option {
	return instanceOption(func(o *newOptions) error {
		if r == nil {
			return errors.New("WithDNSResolver: nil resolver")
		}
		o.resolver = r
		return nil
	})
}

// egressIfname is the name of the egress device inside the sandbox.
const egressIfname = "eth0"

// SetNetworkEnabled turns the sandbox's egress on or off while it runs.
// Turning it off removes the device: open flows end, and new connections
// fail at once. It returns an error naming the missing piece when this
// host cannot give the sandbox a network device (for example
// /dev/net/tun not open to an unprivileged user).
func (i *Instance) SetNetworkEnabled(enabled bool) error {
	i.egressMu.Lock()
	defer i.egressMu.Unlock()
	if err := i.alive(); err != nil {
		return err
	}
	if i.closing { // Close stops the sandbox; nothing may start after its cleanup
		return fmt.Errorf("sandbox %s is closing: %w", i.id, ErrNotRunning)
	}
	if i.egress != nil && i.egress.LinkGone() {
		// The device's far end went (a network helper's relay that ended
		// on its own): this egress is dead, so count it as off.
		i.egress.Close()
		i.egress = nil
	}
	if enabled == (i.egress != nil) {
		return nil
	}
	if !enabled {
		err := i.egress.Close()
		i.egress = nil
		// A device that outlives its descriptor (a VM's NIC) is taken
		// down inside.
		if _, cerr := i.agent.SetNetwork(context.Background(), ipc.NetworkReq{Ifname: egressIfname}); cerr != nil && err == nil {
			err = i.remoteErr(cerr)
		}
		return err
	}
	st, err := i.startEgress()
	if err != nil {
		return fmt.Errorf("enabling the network of sandbox %s: %w", i.id, err)
	}
	i.egress = st
	return nil
}

// tapStreamer is a runner whose sandbox's egress device reaches this
// process as frames over a connection (a network helper's sandbox): the
// helper creates and configures the device as req says, and the returned
// file gives and takes one frame a read or write.
type tapStreamer interface {
	StreamTap(ctx context.Context, req ipc.NetworkReq) (*os.File, error)
}

// startEgress creates the device, attaches the user-space stack to it and
// configures the sandbox's side.
func (i *Instance) startEgress() (*egress.Stack, error) {
	dial := egress.DialFunc(i.dialer)
	if dial == nil {
		dial = egress.DefaultDialer()
	}
	req := ipc.NetworkReq{
		Enabled: true,
		Ifname:  egressIfname,
		Addr:    netip.PrefixFrom(egress.SandboxAddr, egress.SandboxPrefix.Bits()).String(),
		Gateway: egress.Gateway.String(),
		DNS:     egress.Gateway.String(),
		MTU:     egress.MTU,
	}
	if ts, ok := i.runner.(tapStreamer); ok {
		link, err := ts.StreamTap(context.Background(), req)
		if err != nil {
			return nil, i.remoteErr(err)
		}
		return egress.Start(link, dial, i.opts.resolver, i.opts.logger)
	}
	var link *os.File
	createTap := true
	f, err := i.runner.OpenLink(egressIfname)
	switch {
	case err == nil:
		link, createTap = f, false
	case !errors.Is(err, hv.ErrLinkViaAgent):
		return nil, err
	}
	if createTap && !i.fdOK {
		return nil, fmt.Errorf("%w: this backend gives no network device", errors.ErrUnsupported)
	}
	req.CreateTap = createTap
	tap, err := i.agent.SetNetwork(context.Background(), req)
	if err != nil {
		if link != nil {
			link.Close()
		}
		return nil, i.remoteErr(err)
	}
	if createTap {
		link = tap
	}
	return egress.Start(link, dial, i.opts.resolver, i.opts.logger)
}

// closeEgress stops the egress stack, if any, for good: SetNetworkEnabled
// refuses afterwards.
func (i *Instance) closeEgress() {
	i.egressMu.Lock()
	defer i.egressMu.Unlock()
	i.closing = true
	if i.egress != nil {
		i.egress.Close()
		i.egress = nil
	}
}
