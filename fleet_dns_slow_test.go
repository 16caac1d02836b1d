package sandbox

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// TestFleetDNSSlowTarget: DNS lists three helpers and never answers the
// address lookup of one of them: the lookup, its time spent on that one,
// fails (and the fleet keeps what it has) rather than succeed with the
// helpers listed before the slow one, which would drop those after it.
func TestFleetDNSSlowTarget(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			hd, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := q.Name.String()
			if strings.HasPrefix(name, "t1.") {
				continue // slow: never answered
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hd.ID, Response: true, Authoritative: true})
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
			switch {
			case q.Type == dnsmessage.TypeSRV && name == "helpers.test.":
				for _, tg := range []string{"t0.helpers.test.", "t1.helpers.test.", "t2.helpers.test."} {
					b.SRVResource(rh, dnsmessage.SRVResource{Priority: 1, Weight: 1, Port: 9, Target: dnsmessage.MustNewName(tg)})
				}
			case q.Type == dnsmessage.TypeA && name == "t0.helpers.test.":
				b.AResource(rh, dnsmessage.AResource{A: [4]byte{10, 9, 9, 1}})
			case q.Type == dnsmessage.TypeA && name == "t2.helpers.test.":
				b.AResource(rh, dnsmessage.AResource{A: [4]byte{10, 9, 9, 3}})
			}
			out, _ := b.Finish()
			udp.WriteTo(out, from)
		}
	}()
	addr := udp.LocalAddr().String()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	d := &fleetDNS{name: "helpers.test", resolver: r}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // a refresh every 3 s
	defer cancel()
	start := time.Now()
	addrs, err := d.lookup(ctx)
	t.Logf("lookup after %v: %v, %v", time.Since(start).Round(time.Millisecond), addrs, err)
	if err == nil {
		t.Errorf("a lookup that could not resolve every target succeeded with %v: the fleet would drop the helpers DNS lists after the slow one", addrs)
	}
}
