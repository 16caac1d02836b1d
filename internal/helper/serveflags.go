package helper

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// ServeConfig is what `cc-helper serve` runs with: a long-lived helper that
// serves many clients over TCP with mutual TLS (see ParseServeFlags).
type ServeConfig struct {
	Listen   string // address to listen on, host:port
	TLSCert  string // the helper's certificate (PEM)
	TLSKey   string // its key (PEM)
	ClientCA string // CA bundle (PEM) that client certificates must chain to

	// InsecureLoopback serves plaintext TCP, for tests only; it is refused
	// unless Listen is a loopback address.
	InsecureLoopback bool

	Store        string        // the helper's image store; empty: the user's cache
	PolicyFile   string        // JSON Policy; empty: DefaultPolicy
	ClientGrace  time.Duration // how long a vanished client's sandboxes live on
	MaxInstances int           // sandboxes at once on this helper; its capacity
	Verbose      bool          // log to standard error

	Policy Policy // read from PolicyFile by ParseServeFlags

	// RegistryAllow lists networks a client's pull may reach that the
	// egress rules otherwise refuse (this host's loopback and own
	// addresses, link-local and metadata addresses): a registry the
	// operator runs there (-allow-registry, repeatable).
	RegistryAllow []netip.Prefix
}

// Policy is the helper's own configuration of what its clients may do.
type Policy struct {
	// AllowMounts lists helper-side directories a client may bind into a
	// sandbox with WithMount (the directory or anything beneath it).
	// Empty: no helper-side mount is allowed.
	AllowMounts []string `json:"allowMounts,omitempty"`
	// Clients holds limits per client, keyed by the client certificate's
	// subject common name; the key "*" applies to clients not listed.
	Clients map[string]ClientLimits `json:"clients,omitempty"`
}

// ClientLimits bounds one client's use of a helper. Zero means no limit
// beyond the helper's own.
type ClientLimits struct {
	MaxInstances int   `json:"maxInstances,omitempty"` // sandboxes at once
	MaxMemoryMB  int64 `json:"maxMemoryMB,omitempty"`  // sum of their memory limits
	// MaxStoreMB bounds what the client brings to the helper's store: the
	// layers it sends by content and the snapshots of its sandboxes, at
	// their tar's size, and the configs of the images it records.
	MaxStoreMB int64 `json:"maxStoreMB,omitempty"`
	// MaxPids bounds the processes of each of the client's sandboxes and
	// of each step of its builds (a smaller WithPidsLimit stays), so that
	// a fork bomb in one stays inside it.
	MaxPids int64 `json:"maxPids,omitempty"`
}

// pids returns the pids limit of a sandbox whose client asked for asked
// (0 or less: none).
func (l ClientLimits) pids(asked int64) int64 {
	if asked < 0 {
		asked = 0
	}
	if l.MaxPids > 0 && (asked == 0 || asked > l.MaxPids) {
		return l.MaxPids
	}
	return asked
}

// maxStoreMB bounds ClientLimits.MaxStoreMB, so that it counts in bytes
// without overflow: 2^40 MiB, an exbibyte.
const maxStoreMB = 1 << 40

// DefaultClientGrace is how long a helper keeps a vanished client's
// sandboxes before it stops them, unless --client-grace says otherwise.
const DefaultClientGrace = 30 * time.Second

// ParseServeFlags parses the arguments of `cc-helper serve` (without the
// word serve) and reads the policy file they name. It returns an error
// that names the flag when a flag is unknown, a required one is missing,
// a value is malformed, or the policy file cannot be read or decoded
// (unknown fields are errors).
func ParseServeFlags(args []string) (*ServeConfig, error) {
	c := &ServeConfig{}
	fs := flag.NewFlagSet("cc-helper serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Listen, "listen", "", "address to listen on (host:port)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "the helper's TLS certificate (PEM file)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "the key of -tls-cert (PEM file)")
	fs.StringVar(&c.ClientCA, "client-ca", "", "CA certificates (PEM file) client certificates must chain to")
	fs.BoolVar(&c.InsecureLoopback, "insecure-loopback", false, "serve plaintext on a loopback address (tests only)")
	fs.StringVar(&c.Store, "store", "", "the image store directory (default: the user's cache)")
	fs.StringVar(&c.PolicyFile, "policy", "", "JSON policy: allowed mounts, per-client limits")
	fs.DurationVar(&c.ClientGrace, "client-grace", DefaultClientGrace, "how long a vanished client's sandboxes live on")
	fs.IntVar(&c.MaxInstances, "max-instances", 100, "sandboxes at once on this helper")
	fs.BoolVar(&c.Verbose, "v", false, "log to standard error")
	fs.Func("allow-registry", "a network (CIDR) or an address clients' pulls may reach though the egress rules refuse it (this host's loopback or addresses, link-local and metadata addresses), on every port: allow no more than the registry's own address; repeatable", func(v string) error {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return err
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.RegistryAllow = append(c.RegistryAllow, p.Masked())
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("cc-helper serve: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("cc-helper serve: unexpected argument %q", fs.Arg(0))
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("cc-helper serve: %w", err)
	}
	if c.PolicyFile != "" {
		p, err := readPolicy(c.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("cc-helper serve: -policy: %w", err)
		}
		c.Policy = p
	}
	return c, nil
}

func (c *ServeConfig) check() error {
	if c.Listen == "" {
		return errors.New("-listen is required")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	if c.InsecureLoopback {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("-insecure-loopback needs a loopback -listen address, not %q", host)
		}
	} else if c.TLSCert == "" || c.TLSKey == "" || c.ClientCA == "" {
		return errors.New("-tls-cert, -tls-key and -client-ca are required (mutual TLS)")
	}
	if c.ClientGrace < 0 {
		return errors.New("-client-grace must not be negative")
	}
	if c.MaxInstances < 1 {
		return errors.New("-max-instances must be at least 1")
	}
	return nil
}

func readPolicy(path string) (Policy, error) {
	var p Policy
	f, err := os.Open(path)
	if err != nil {
		return p, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	for i, m := range p.AllowMounts {
		if !filepath.IsAbs(m) {
			return p, fmt.Errorf("%s: allowMounts[%d] %q is not an absolute path", path, i, m)
		}
		p.AllowMounts[i] = filepath.Clean(m)
	}
	for name, l := range p.Clients {
		if l.MaxInstances < 0 || l.MaxMemoryMB < 0 || l.MaxStoreMB < 0 || l.MaxPids < 0 {
			return p, fmt.Errorf("%s: clients[%q]: limits must not be negative", path, name)
		}
		if l.MaxStoreMB > maxStoreMB {
			return p, fmt.Errorf("%s: clients[%q]: maxStoreMB %d is more than %d", path, name, l.MaxStoreMB, maxStoreMB)
		}
	}
	return p, nil
}
