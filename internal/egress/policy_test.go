package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestDefaultDialerRefuses: the destinations that lead back into the host
// or to a cloud's metadata service are refused before any dial, and an
// allowed prefix lets one through.
func TestDefaultDialerRefuses(t *testing.T) {
	refused := []string{
		"127.0.0.1", "169.254.169.254", "100.100.100.200", "168.63.129.16",
		"255.255.255.255", "240.0.0.1", "0.0.0.0", "224.0.0.1", "10.0.2.2",
		"::1", "fe80::1", "fd00:ec2::254",
		// A zone leaves the address what it is (netip's Contains is false
		// for every zoned address).
		"::1%lo", "::1%1", "::%lo", "fe80::1%lo", "fd00:ec2::254%lo", "ff02::1%lo",
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			refused = append(refused, p.Addr().String()) // the host's own
		}
	}
	dial := DefaultDialer()
	for _, a := range refused {
		c, err := dial(context.Background(), "udp", net.JoinHostPort(a, "9"))
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("DefaultDialer() dialing %s: %v; want ErrRefused", a, err)
		}
	}
	c, err := DefaultDialer(netip.MustParsePrefix("127.0.0.0/8"))(context.Background(), "udp", "127.0.0.1:9")
	if err != nil {
		t.Errorf("an allowed loopback: %v", err)
	} else {
		c.Close()
	}
}
