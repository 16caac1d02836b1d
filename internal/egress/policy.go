package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// The sandbox side of the egress network.
var (
	SandboxPrefix = netip.MustParsePrefix("10.0.2.0/24")
	SandboxAddr   = netip.MustParseAddr("10.0.2.15")
	Gateway       = netip.MustParseAddr("10.0.2.2")
)

// DialFunc opens an outbound connection for a flow leaving a sandbox.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// blocked are the destinations the default dialer refuses unless allowed:
// the host's own loopback, link-local networks (where cloud metadata
// services live), unspecified and multicast addresses, and the sandbox's
// own network.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("ff00::/8"),
	SandboxPrefix,
}

// DefaultDialer returns a dialer that dials on the host with net.Dialer and
// refuses the blocked destinations (host loopback, link-local, unspecified,
// multicast, the sandbox's own network) unless one of allow contains them.
func DefaultDialer(allow ...netip.Prefix) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("egress: %s: not an IP address and port", addr)
		}
		if err := checkAllowed(ap.Addr().Unmap(), allow); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(ap), Err: err}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// ErrRefused is returned by the default dialer for a blocked destination.
var ErrRefused = fmt.Errorf("destination refused by the sandbox's egress policy")

func checkAllowed(a netip.Addr, allow []netip.Prefix) error {
	for _, p := range allow {
		if p.Contains(a) {
			return nil
		}
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return fmt.Errorf("%w: %v is in %v", ErrRefused, a, p)
		}
	}
	return nil
}
