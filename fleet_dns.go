package sandbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FleetOption configures FleetFromDNS.
type FleetOption func(*fleetDNS)

// WithResolver makes FleetFromDNS look the helpers up with r instead of
// net.DefaultResolver.
func WithResolver(r *net.Resolver) FleetOption {
	return func(d *fleetDNS) { d.resolver = r }
}

// WithRefresh sets how often FleetFromDNS looks the helpers up again
// (default 30 s).
func WithRefresh(every time.Duration) FleetOption {
	return func(d *fleetDNS) { d.every = every }
}

// fleetDNS keeps a fleet's helpers in step with DNS.
type fleetDNS struct {
	name     string
	port     int
	tls      *tls.Config
	resolver *net.Resolver
	every    time.Duration

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// tlsFor returns the TLS configuration to dial a helper with: the
// caller's, naming the service when it names no server (the helpers'
// certificates name the service, not each address).
func (d *fleetDNS) tlsFor() *tls.Config {
	if d.tls == nil {
		return nil
	}
	tc := d.tls.Clone()
	if tc.ServerName == "" {
		tc.ServerName = strings.TrimSuffix(d.name, ".")
	}
	return tc
}

// FleetFromDNS returns a fleet of the helpers that name resolves to, as a
// Kubernetes headless service publishes them: the SRV records of name
// when it has some (their targets' addresses, and ports), else its A and
// AAAA records with port. The records are looked up again every 30 s (WithRefresh):
// new helpers join, helpers no longer listed take no new sandboxes (those
// they run go on). Helpers are dialed when first needed, with tc, whose
// ServerName defaults to name. The first lookup runs under ctx: give it a
// deadline, as a DNS server that answers slowly holds it (each later one
// gets the refresh period). It returns an error when the first lookup
// fails or finds nothing; Close stops the refreshing.
func FleetFromDNS(ctx context.Context, name string, port int, tc *tls.Config, opts ...FleetOption) (*Fleet, error) {
	d := &fleetDNS{name: name, port: port, tls: tc, resolver: net.DefaultResolver, every: 30 * time.Second, done: make(chan struct{})}
	for _, o := range opts {
		o(d)
	}
	if tc == nil {
		return nil, errors.New("FleetFromDNS: a TLS configuration is required")
	}
	f := &Fleet{dns: d}
	addrs, err := d.lookup(ctx)
	if err != nil {
		return nil, fmt.Errorf("FleetFromDNS: %w", err)
	}
	f.update(addrs)
	d.wg.Go(func() { d.refresh(f) })
	return f, nil
}

// lookup returns the helpers' addresses, sorted: at most maxFleetHelpers
// of them, so that an answer of thousands of SRV targets each with
// thousands of addresses costs at most maxFleetHelpers lookups of targets
// and holds no more addresses than the fleet keeps. The SRV records are
// taken in the order of their targets and ports, each target's addresses
// sorted, so that the same answer keeps the same helpers whatever order
// the resolver shuffled it into.
func (d *fleetDNS) lookup(ctx context.Context) ([]string, error) {
	var addrs []string
	if _, srvs, err := d.resolver.LookupSRV(ctx, "", "", d.name); err == nil && len(srvs) > 0 {
		slices.SortFunc(srvs, func(a, b *net.SRV) int {
			if c := strings.Compare(a.Target, b.Target); c != 0 {
				return c
			}
			return int(a.Port) - int(b.Port)
		})
		resolved := map[string][]string{}
		for _, s := range srvs {
			if len(addrs) >= maxFleetHelpers || len(resolved) >= maxFleetHelpers {
				break
			}
			if s.Port == 0 { // no service listens there
				continue
			}
			// The targets are resolved here, with the same resolver,
			// each once.
			hosts, ok := resolved[s.Target]
			if !ok {
				var err error
				if hosts, err = d.resolver.LookupHost(ctx, s.Target); err != nil {
					var de *net.DNSError
					if ctx.Err() != nil || errors.As(err, &de) && (de.IsTimeout || de.IsTemporary) {
						// The lookup's time is spent, or a target's
						// answer did not come (a slow server): the
						// targets not resolved are not gone, so the
						// lookup fails and the fleet keeps what it has.
						return nil, fmt.Errorf("%s: resolving SRV target %s: %w", d.name, s.Target, err)
					}
					hosts = nil // a target that does not resolve now: maybe later
				}
				slices.Sort(hosts)
				resolved[s.Target] = hosts
			}
			for _, h := range hosts[:min(len(hosts), maxFleetHelpers-len(addrs))] {
				addrs = append(addrs, net.JoinHostPort(h, strconv.Itoa(int(s.Port))))
			}
		}
	} else {
		hosts, err := d.resolver.LookupHost(ctx, d.name)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			addrs = append(addrs, net.JoinHostPort(h, strconv.Itoa(d.port)))
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s: no helpers", d.name)
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}

// maxFleetHelpers bounds the helpers a fleet takes from DNS (the first,
// in order, of those listed): DNS that lists more cannot make it hold and
// survey them all.
const maxFleetHelpers = 1024

// refresh looks the helpers up every d.every until stop.
func (d *fleetDNS) refresh(f *Fleet) {
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.every)
		addrs, err := d.lookup(ctx)
		cancel()
		if err == nil { // a failed lookup keeps what there is
			f.update(addrs)
		}
	}
}

// update makes the fleet's members the helpers at addrs (the first
// maxFleetHelpers, sorted): new ones join (dialed when first needed),
// missing ones leave (dropped, and closed if dialed, once none of their
// sandboxes runs and nothing is being started on them), and one that
// returns is taken back. Only the refresh calls it (FleetFromDNS's first
// lookup before the refresh starts), so the members cannot change between
// its two steps; no member's lock is taken under the fleet's, as a dial
// holds its member's for as long as it takes.
func (f *Fleet) update(addrs []string) {
	addrs = addrs[:min(len(addrs), maxFleetHelpers)]
	listed := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		listed[a] = true
	}
	var kept []*fleetMember
	for _, m := range f.snapshot() {
		m.mu.Lock()
		m.gone = !listed[m.addr]
		r := m.remote
		m.mu.Unlock()
		// A Remote that is closed here counts as idle: it cannot start
		// anything once CloseIfIdle has said so.
		if !m.gone || r != nil && !r.nc.CloseIfIdle() {
			kept = append(kept, m)
		}
		delete(listed, m.addr)
	}
	for _, a := range addrs {
		if listed[a] {
			kept = append(kept, &fleetMember{addr: a})
		}
	}
	f.mu.Lock()
	f.members = kept
	f.mu.Unlock()
}

func (d *fleetDNS) stop() {
	d.once.Do(func() { close(d.done) })
	d.wg.Wait()
}
