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
// the host's own loopback, link-local networks (where most cloud metadata
// services live) and the metadata services that live elsewhere (Alibaba
// Cloud's, Azure's WireServer, AWS's over IPv6), unspecified, multicast,
// broadcast and reserved addresses, and the sandbox's own network. The
// host's own addresses on its other interfaces are refused too (see
// hostAddr).
var blocked = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("100.100.100.200/32"),
	netip.MustParsePrefix("168.63.129.16/32"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"), // reserved, and 255.255.255.255
	netip.MustParsePrefix("ff00::/8"),
	SandboxPrefix,
}

// DefaultDialer returns a dialer that dials on the host with net.Dialer and
// refuses the blocked destinations (host loopback and the host's own
// addresses, link-local and cloud metadata addresses, unspecified,
// multicast, broadcast and reserved addresses, the sandbox's own network)
// unless one of allow contains them.
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

// CheckDestination returns an error matching ErrRefused when DefaultDialer
// (with allow) would refuse a connection to a, nil otherwise: for callers
// whose connections go where no dialer sees the destination (through an
// HTTP proxy).
func CheckDestination(a netip.Addr, allow ...netip.Prefix) error { return checkAllowed(a, allow) }

// checkAllowed refuses a blocked destination, or an address of this host,
// that allow does not hold. An IPv6 zone (an interface) leaves the address
// what it is: "::1%lo" is the loopback.
func checkAllowed(a netip.Addr, allow []netip.Prefix) error {
	a = a.Unmap().WithZone("")
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
	if hostAddr(a) {
		return fmt.Errorf("%w: %v is an address of this host", ErrRefused, a)
	}
	return nil
}

// hostAddr reports whether a is an address of one of this host's
// interfaces, where its services listen (on 0.0.0.0 or on that address):
// a way back into the host as good as its loopback. The interfaces are
// read at each dial, so addresses added later count; an error reading
// them counts every address as the host's.
func hostAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a {
			return true
		}
	}
	return false
}
