package kubernetes

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// guideCommands returns the openssl commands of README.md's
// "Certificates" section, in order, with their continuation lines joined,
// and the shell variables the section sets.
func guideCommands(t *testing.T) []string {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := bytes.Cut(b, []byte("\n## 2. Certificates\n"))
	if !ok {
		t.Fatal(`README.md has no "## 2. Certificates" section`)
	}
	sec, _, _ = bytes.Cut(sec, []byte("\n## "))
	var cmds []string
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(sec))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "    ")
		if !ok {
			continue // prose and tables
		}
		cur += strings.TrimSpace(line)
		if c, more := strings.CutSuffix(cur, `\`); more {
			cur = c + " "
			continue
		}
		if strings.HasPrefix(cur, "openssl ") || strings.HasPrefix(cur, "NS=") {
			cmds = append(cmds, cur)
		}
		cur = ""
	}
	if len(cmds) < 5 {
		t.Fatalf("README.md's Certificates section has %d openssl commands, want the CA's, the helper's and a client's", len(cmds))
	}
	return cmds
}

// TestGuideCertificates runs the guide's openssl commands and checks what
// they make with a real TLS 1.3 handshake: the client's certificate
// passes the helper's -client-ca, the helper's certificate passes for the
// Service's name (FleetFromDNS's default ServerName) and for an SRV
// target, and a client certificate of another CA is refused.
func TestGuideCertificates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is not installed (make deps installs it):", err)
	}
	dir := t.TempDir()
	script := "set -e\n" + strings.Join(guideCommands(t), "\n") + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the guide's commands: %v\n%s\n%s", err, script, out)
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	server, err := tls.LoadX509KeyPair(file("tls.crt"), file("tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.LoadX509KeyPair(file("client.crt"), file("client.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(file("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	// Another CA's client, made the same way.
	other := exec.Command("bash", "-c", "set -e\nmkdir other && cd other\n"+strings.Join(guideCommands(t), "\n")+"\n")
	other.Dir = dir
	if out, err := other.CombinedOutput(); err != nil {
		t.Fatalf("another CA: %v\n%s", err, out)
	}
	stranger, err := tls.LoadX509KeyPair(file("other/client.crt"), file("other/client.key"))
	if err != nil {
		t.Fatal(err)
	}

	const svc = "cc-helper.cc-sandbox.svc.cluster.local"
	for _, c := range []struct {
		name       string
		serverName string
		cert       []tls.Certificate
		want       string // "" for success, else a part of the error
	}{
		{"the Service's name", svc, []tls.Certificate{client}, ""},
		{"an SRV target", "10-1-2-3." + svc, []tls.Certificate{client}, ""},
		{"another name", "cc-helper.other.svc.cluster.local", []tls.Certificate{client}, "certificate is valid for"},
		{"no client certificate", svc, nil, "certificate required"},
		{"another CA's client", svc, []tls.Certificate{stranger}, "unknown certificate authority"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cn, err := handshake(t, server, roots, &tls.Config{
				Certificates: c.cert, RootCAs: roots, ServerName: c.serverName, MinVersion: tls.VersionTLS13,
			})
			switch {
			case c.want == "" && err != nil:
				t.Fatal(err)
			case c.want == "" && cn != "ci-runner":
				t.Errorf("the helper sees the client as %q, want the guide's ci-runner", cn)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// handshake serves one TLS 1.3 connection on loopback as cc-helper serve
// would (client certificates required, chained to roots), connects with
// client, and returns the common name of the client's certificate as the
// server saw it, or the first error of either side.
func handshake(t *testing.T, server tls.Certificate, roots *x509.CertPool, client *tls.Config) (string, error) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server}, ClientCAs: roots,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		cn  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		_, err = tc.Write([]byte("ok"))
		done <- result{cn: tc.ConnectionState().PeerCertificates[0].Subject.CommonName, err: err}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		// In TLS 1.3 the server's verdict on the client's certificate
		// arrives after the client's handshake: read to learn it.
		_, err = io.ReadFull(c, make([]byte, 2))
		c.Close()
	}
	r := <-done
	if err != nil || r.err != nil {
		return "", errors.Join(err, r.err)
	}
	return r.cn, nil
}
