// Package testcerts makes the certificate authorities and certificates
// the network helper's tests use (crypto/x509, ECDSA P-256), and writes
// them as PEM files for cc-helper serve's flags.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// CA is a certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte // the CA certificate, PEM
}

var serial atomic.Int64

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func template(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

// NewCA makes a self-signed CA named cn. It panics when the system's
// random source fails.
func NewCA(cn string) *CA {
	t := template(cn)
	t.IsCA, t.BasicConstraintsValid = true, true
	t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	k := newKey()
	der, err := x509.CreateCertificate(rand.Reader, t, t, &k.PublicKey, k)
	if err != nil {
		panic(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &CA{cert: c, key: k, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pool returns a pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Cert is an issued certificate with its key.
type Cert struct {
	TLS     tls.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Issue makes a certificate for cn, valid for the DNS names and addresses
// given (a server) or as a client when none are given.
func (ca *CA) Issue(cn string, dnsNames []string, ips []net.IP) *Cert {
	t := template(cn)
	t.KeyUsage = x509.KeyUsageDigitalSignature
	t.DNSNames, t.IPAddresses = dnsNames, ips
	if len(dnsNames)+len(ips) > 0 {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	k := newKey()
	der, err := x509.CreateCertificate(rand.Reader, t, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		panic(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err)
	}
	c := &Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
	c.TLS, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		panic(err)
	}
	return c
}

// ClientConfig returns a TLS configuration presenting c and trusting
// servers of ca, for serverName.
func (c *Cert) ClientConfig(ca *CA, serverName string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, RootCAs: ca.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS13}
}

// Write writes c's certificate and key to certFile and keyFile (0600).
func (c *Cert) Write(certFile, keyFile string) error {
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, c.KeyPEM, 0o600)
}
