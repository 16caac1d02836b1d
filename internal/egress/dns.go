package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsTimeout bounds the host's answer to one query.
const dnsTimeout = 10 * time.Second

// serveDNS answers the queries of one DNS flow from the stack's resolver.
func (st *Stack) serveDNS(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		resp := st.answer(buf[:n])
		if resp != nil {
			c.Write(resp)
		}
	}
}

// answer builds the reply to one query: A and AAAA from the host's
// resolver, an empty answer for other types, SERVFAIL when the host cannot
// tell, NXDOMAIN for names that do not exist.
func (st *Stack) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	var answers []dnsmessage.Resource
	if q.Class == dnsmessage.ClassINET && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeAAAA) {
		network := "ip4"
		if q.Type == dnsmessage.TypeAAAA {
			network = "ip6"
		}
		ctx, cancel := context.WithTimeout(st.ctx, dnsTimeout)
		name := strings.TrimSuffix(q.Name.String(), ".")
		addrs, err := st.resolver.LookupNetIP(ctx, network, name)
		if err != nil {
			// No address of this family: the name may still exist.
			_, anyErr := st.resolver.LookupNetIP(ctx, "ip", name)
			var dnsErr *net.DNSError
			switch {
			case anyErr == nil:
				// NOERROR with no answer
			case errors.As(anyErr, &dnsErr) && dnsErr.IsNotFound:
				resp.RCode = dnsmessage.RCodeNameError
			default:
				resp.RCode = dnsmessage.RCodeServerFailure
			}
		}
		cancel()
		for _, a := range addrs {
			answers = append(answers, resource(q, a))
		}
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), resp)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	for _, r := range answers {
		switch body := r.Body.(type) {
		case *dnsmessage.AResource:
			b.AResource(r.Header, *body)
		case *dnsmessage.AAAAResource:
			b.AAAAResource(r.Header, *body)
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// resource makes an answer record for a.
func resource(q dnsmessage.Question, a netip.Addr) dnsmessage.Resource {
	h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	if a.Is4() || a.Is4In6() {
		h.Type = dnsmessage.TypeA
		return dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.Unmap().As4()}}
	}
	h.Type = dnsmessage.TypeAAAA
	return dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}}
}
