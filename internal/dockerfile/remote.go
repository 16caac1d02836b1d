package dockerfile

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ADD of an http(s) URL: the builder itself fetches the file, every
// connection through Options.Dial (the build's dialer, which the caller
// controls), never the host's own network stack directly. With
// --checksum the key is the checksum, so a rebuild needs no fetch;
// without it the file is fetched every build and its digest is the key.

// remoteFile is one URL source of an ADD.
type remoteFile struct {
	url      *url.URL
	checksum string // "algo:hex" as given, or ""

	fetched bool
	host    string    // the fetched file
	digest  string    // sha256:hex of what was fetched
	mtime   time.Time // Last-Modified, or zero
}

// isURL reports whether an ADD source is an http(s) URL.
func isURL(src string) bool {
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
}

// isGit reports whether an ADD source is a git repository.
func isGit(src string) bool {
	if strings.HasPrefix(src, "git://") || strings.HasPrefix(src, "git@") || strings.HasPrefix(src, "ssh://") {
		return true
	}
	u, err := url.Parse(src)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.HasSuffix(u.Path, ".git")
}

// errGit is the error for ADD of a git repository.
var errGit = errors.New("ADD of a git repository is not supported: a git client's connections cannot be made to pass the build's dialer here; clone it in a RUN step (with WithBuildNetwork), or ADD an archive URL of the commit with --checksum")

// newRemote parses an ADD URL source with its --checksum.
func newRemote(src, checksum string) (*remoteFile, error) {
	u, err := url.Parse(src)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("ADD %q: not a URL", src)
	}
	if checksum != "" {
		if _, _, err := checksumHash(checksum); err != nil {
			return nil, err
		}
	}
	return &remoteFile{url: u, checksum: checksum}, nil
}

// checksumHash returns the hash --checksum names and the digest it
// expects.
func checksumHash(checksum string) (hash.Hash, string, error) {
	algo, want, ok := strings.Cut(checksum, ":")
	var h hash.Hash
	size := 0
	switch algo {
	case "sha256":
		h, size = sha256.New(), sha256.Size
	case "sha384":
		h, size = sha512.New384(), sha512.Size384
	case "sha512":
		h, size = sha512.New(), sha512.Size
	}
	if b, err := hex.DecodeString(want); !ok || h == nil || err != nil || len(b) != size {
		return nil, "", fmt.Errorf("invalid --checksum %q: want sha256:<64 hex digits> (or sha384, sha512)", checksum)
	}
	return h, strings.ToLower(want), nil
}

// name returns the file name a URL gives in a destination directory.
func (r *remoteFile) name() (string, error) {
	n := path.Base(r.url.Path)
	if n == "/" || n == "." || n == "" {
		return "", fmt.Errorf("ADD %s: cannot determine a file name from the URL: give the destination file's name", r.url.Redacted())
	}
	return n, nil
}

// keyPart is what the URL adds to the step's key: its checksum, or the
// digest of what it serves now (fetching it).
func (s *state) remoteKey(r *remoteFile, tmp string) (string, error) {
	if r.checksum != "" {
		return r.url.Redacted() + " " + r.checksum, nil
	}
	if err := s.fetch(r, tmp); err != nil {
		return "", err
	}
	return r.url.Redacted() + " " + r.digest + " " + r.mtime.UTC().Format(time.RFC3339), nil
}

// fetch downloads r into the directory tmp, once, and checks its
// checksum.
func (s *state) fetch(r *remoteFile, tmp string) error {
	if r.fetched {
		return nil
	}
	shown := r.url.Redacted()
	if !s.b.opts.Network {
		return fmt.Errorf("ADD %s: the build has no network: WithBuildNetwork lets ADD fetch URLs, through the build's dialer", shown)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:           s.dialThrough,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(s.b.ctx, http.MethodGet, r.url.String(), nil)
	if err != nil {
		return fmt.Errorf("ADD %s: %w", shown, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, credentials and all
		}
		return fmt.Errorf("ADD %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ADD %s: the server answered %s", shown, resp.Status)
	}
	f, err := os.CreateTemp(tmp, "url-")
	if err != nil {
		return err
	}
	defer f.Close()
	h256 := sha256.New()
	var check hash.Hash
	want := ""
	w := io.Writer(io.MultiWriter(f, h256))
	if r.checksum != "" {
		check, want, _ = checksumHash(r.checksum)
		w = io.MultiWriter(w, check)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("ADD %s: %w", shown, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if check != nil {
		if got := hex.EncodeToString(check.Sum(nil)); got != want {
			algo, _, _ := strings.Cut(r.checksum, ":")
			return fmt.Errorf("ADD %s: checksum mismatch: the server sent %s:%s, --checksum wants %s", shown, algo, got, r.checksum)
		}
	}
	r.fetched, r.host, r.digest = true, filepath.Clean(f.Name()), "sha256:"+hex.EncodeToString(h256.Sum(nil))
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		r.mtime = lm
	}
	return nil
}

// dialThrough opens a connection of the fetch through the build's
// dialer, resolving a host name on the host first.
func (s *state) dialThrough(ctx context.Context, network, addr string) (net.Conn, error) {
	if s.b.opts.Dial == nil {
		return nil, errors.New("the build has no dialer")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	var first error
	for _, ip := range ips {
		c, err := s.b.opts.Dial(ctx, "tcp", net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}
