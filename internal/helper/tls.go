package helper

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// HandshakeTimeout bounds a network helper's TLS handshake: a connection
// that has not proved its client certificate by then is closed, before any
// message is read from it.
const HandshakeTimeout = 10 * time.Second

// KeepAlive is the TCP keepalive both ends of a network helper's
// connections use, so that a peer cut off without a word (a node gone, a
// cable pulled) is noticed in about 10 s (idle 4 s, then 3 probes 2 s
// apart) rather than the kernel's two hours.
var KeepAlive = net.KeepAliveConfig{Enable: true, Idle: 4 * time.Second, Interval: 2 * time.Second, Count: 3}

// serverTLS returns the TLS configuration of `cc-helper serve`: TLS 1.3
// only, and a client certificate that chains to -client-ca required and
// verified. It returns an error naming the file that cannot be read or
// holds no certificate.
func serverTLS(c *ServeConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	pem, err := os.ReadFile(c.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-client-ca: %s holds no PEM certificate", c.ClientCA)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// clientName returns the identity of a verified TLS client: the common
// name of its certificate's subject, which the policy's per-client limits
// are keyed by and which owns the client's sandboxes.
func clientName(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return "", errors.New("no verified client certificate")
	}
	cn := cs.PeerCertificates[0].Subject.CommonName
	if cn == "" {
		return "", errors.New("the client certificate has no subject common name")
	}
	return cn, nil
}

// InsecureClient is the identity of every client of a helper serving
// plaintext on loopback (-insecure-loopback, tests only).
const InsecureClient = "insecure-loopback"
