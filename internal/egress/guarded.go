package egress

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/idna"
)

// GuardedTransport is the HTTP transport of a pull whose image name a
// client this host does not trust chose (an MCP client, a network
// helper's client): the client picks the registry, and with it where the
// server's own requests go (redirects and token realms included), so every
// connection passes DefaultDialer(allow...)'s rules, as a sandbox's egress
// would: not the host's loopback or its own addresses, not link-local or
// metadata addresses, but for the networks allow lists. The proxy the
// operator configured
// (HTTPS_PROXY, HTTP_PROXY) is reached wherever it is; a request sent
// through it is checked by its destination's addresses first, since the
// dialer then sees only the proxy's.
func GuardedTransport(allow ...netip.Prefix) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	proxies := configuredProxies()
	t.Proxy = func(req *http.Request) (*url.URL, error) {
		proxy, err := http.ProxyFromEnvironment(req)
		switch {
		case err != nil:
			return nil, err
		case proxy != nil:
			return proxy, checkDestination(req.Context(), req.URL.Hostname(), allow)
		case proxies[canonicalAddr(req.URL)]:
			// Sent direct, to the one address the dialer lets through
			// unchecked: a registry spelt as the proxy's host:port (on
			// the host's loopback, never proxied) is no registry.
			return nil, fmt.Errorf("registry %s: %w: the proxy's own address", req.URL.Host, ErrRefused)
		}
		return nil, nil
	}
	policy := DefaultDialer(allow...)
	var direct net.Dialer
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if proxies[addr] {
			return direct.DialContext(ctx, network, addr)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		var first error
		for _, ip := range ips {
			c, err := policy(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			if first == nil {
				first = err
			}
		}
		return nil, fmt.Errorf("registry %s: %w", addr, first)
	}
	return t
}

// checkDestination refuses a host (a name or an address) that
// DefaultDialer would refuse: a name when any of its addresses is refused.
// The proxy resolves a name again, so one whose answers change between
// the two lookups is checked by the first.
func checkDestination(ctx context.Context, host string, allow []netip.Prefix) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return CheckDestination(a, allow...)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		if err := CheckDestination(ip, allow...); err != nil {
			return fmt.Errorf("registry %s: %w", host, err)
		}
	}
	return nil
}

// configuredProxies returns the host:port of each proxy the environment
// names for HTTP and HTTPS.
func configuredProxies() map[string]bool {
	proxies := map[string]bool{}
	for _, v := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		raw := os.Getenv(v)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			continue
		}
		proxies[canonicalAddr(u)] = true
	}
	return proxies
}

// canonicalAddr is the host:port net/http dials for u, its scheme's port
// when u names none, and its host name as net/http spells it to dial: a
// name that is not ASCII mapped by IDNA's lookup profile, which folds
// fullwidth letters and case ("ｌｏｃａｌｈｏｓｔ" dials "localhost"), so
// that a registry spelt so is the proxy's own address too.
func canonicalAddr(u *url.URL) string {
	host := u.Hostname()
	if !isASCII(host) {
		if a, err := idna.Lookup.ToASCII(host); err == nil {
			host = a
		}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "socks5": "1080"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
