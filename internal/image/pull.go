package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullPolicy says when Pull asks the registry.
type PullPolicy int

const (
	// PullIfNotPresent uses the image the store has for the reference and
	// platform, and pulls only when it has none.
	PullIfNotPresent PullPolicy = iota
	// PullAlways asks the registry what the reference names now; layers
	// already in the store are not fetched again.
	PullAlways
	// PullNever uses only what the store has.
	PullNever
)

// PullOptions configure Pull. The zero value pulls for the host's
// platform with the default keychain, if not present.
type PullOptions struct {
	Platform  v1.Platform         // zero: HostPlatform()
	Policy    PullPolicy          // zero: PullIfNotPresent
	Keychain  authn.Keychain      // nil: authn.DefaultKeychain (Docker config, credential helpers)
	Auth      authn.Authenticator // when set, used instead of Keychain
	Transport http.RoundTripper   // nil: remote.DefaultTransport
	PlainHTTP bool                // allow plain HTTP to any registry, not only loopback
	Progress  func(LayerProgress) // called serially while layers are fetched
	Jobs      int                 // layers fetched at once; 0: 3
	// Verify, when set, names layers the store holds that the registry
	// must still serve, checked against the manifest's digests, before
	// the pull succeeds (a caller that may not use them unless it shows
	// the registry has them); an image or reference already in the store
	// that has such a layer is fetched again.
	Verify func(diffID v1.Hash) bool
	// Checked, when set, is told of each layer this pull read from the
	// registry and checked against the manifest (one it added, or one
	// Verify named); it may be called from several goroutines at once.
	Checked func(diffID v1.Hash)
	// Unlocked fetches each layer as LayerSource.Unlocked says: a
	// registry that stalls (one a caller of a shared store chose) holds no
	// lock others wait for, at the cost of fetching a layer twice when two
	// pulls want it at once.
	Unlocked bool
}

// needsVerify reports whether rec has a layer o.Verify names.
func (o PullOptions) needsVerify(rec ImageRecord) bool {
	if o.Verify == nil {
		return false
	}
	for _, l := range rec.Layers {
		if o.Verify(l) {
			return true
		}
	}
	return false
}

// Pulled is what Pull returns.
type Pulled struct {
	Image     ImageRecord
	Reference string // the reference, fully qualified
}

// refKey is where a pulled reference is kept for a platform.
func refKey(ref name.Reference, p v1.Platform) string {
	return "pull " + FormatPlatform(p) + " " + ref.Name()
}

// Pull gets the image ref names from its registry into the store, as its
// policy says. Errors: a malformed reference; an error matching
// fs.ErrNotExist under PullNever when the store lacks it; ErrPlatform when
// the image (or every image of an index) is for another platform; the
// registry's errors (authentication, not found); a plain-HTTP registry off
// loopback without PlainHTTP; and those of AddLayer.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (Pulled, error) {
	var nopts []name.Option
	if o.PlainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return Pulled{}, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	platform := o.Platform
	if platform.OS == "" {
		platform = HostPlatform()
	}
	key := refKey(r, platform)
	if o.Policy != PullAlways {
		if rec, err := s.lookupPulled(key); err == nil && !o.needsVerify(rec) {
			return Pulled{Image: rec, Reference: r.Name()}, nil
		}
		if o.Policy == PullNever {
			return Pulled{}, fmt.Errorf("image %s for %s is not in the store and the pull policy is Never: %w",
				r.Name(), FormatPlatform(platform), fs.ErrNotExist)
		}
	}
	img, err := s.resolve(ctx, r, platform, o)
	if err != nil {
		return Pulled{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return Pulled{}, fmt.Errorf("pulling %s: %w", r.Name(), err)
	}
	rec, err := s.Image(digest)
	if err != nil || o.needsVerify(rec) {
		if rec, err = s.fetch(ctx, r, img, digest, platform, o); err != nil {
			return Pulled{}, err
		}
	}
	if err := s.PutRef(ctx, Ref{Key: key, Name: r.Name(), Image: digest}); err != nil {
		return Pulled{}, err
	}
	return Pulled{Image: rec, Reference: r.Name()}, nil
}

// lookupPulled returns the image a pulled reference points to, if the
// store has all of it.
func (s *Store) lookupPulled(key string) (ImageRecord, error) {
	ref, err := s.LookupRef(key)
	if err != nil {
		return ImageRecord{}, err
	}
	return s.Image(ref.Image)
}

// resolve asks the registry for the image r names on platform.
func (s *Store) resolve(ctx context.Context, r name.Reference, platform v1.Platform, o PullOptions) (v1.Image, error) {
	rt := o.Transport
	if rt == nil {
		rt = remote.DefaultTransport
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(&plainHTTPGuard{next: rt, allow: o.PlainHTTP}),
	}
	switch {
	case o.Auth != nil:
		ropts = append(ropts, remote.WithAuth(o.Auth))
	case o.Keychain != nil:
		ropts = append(ropts, remote.WithAuthFromKeychain(o.Keychain))
	default:
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", r.Name(), err)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("pulling %s: %w", r.Name(), err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("pulling %s: %w", r.Name(), err)
		}
		d, err := pickManifest(im, platform, r.Name())
		if err != nil {
			return nil, err
		}
		if !d.MediaType.IsImage() {
			return nil, fmt.Errorf("pulling %s: the index entry for %s is a %s, not an image", r.Name(), FormatPlatform(platform), d.MediaType)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("pulling %s: %w", r.Name(), err)
		}
		return img, nil
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("pulling %s: %w", r.Name(), err)
		}
		return img, nil
	}
	return nil, fmt.Errorf("pulling %s: unsupported manifest type %q", r.Name(), desc.MediaType)
}

// fetch checks an image's config and platform and imports its layers.
func (s *Store) fetch(ctx context.Context, r name.Reference, img v1.Image, digest v1.Hash, platform v1.Platform, o PullOptions) (ImageRecord, error) {
	m, err := img.Manifest()
	if err != nil {
		return ImageRecord{}, fmt.Errorf("pulling %s: %w", r.Name(), err)
	}
	raw, err := rawConfig(img, m, nil)
	if err != nil {
		return ImageRecord{}, fmt.Errorf("pulling %s: config: %w", r.Name(), err)
	}
	if err := checkConfig(raw, m.Config.Digest); err != nil {
		return ImageRecord{}, fmt.Errorf("pulling %s: %w", r.Name(), err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return ImageRecord{}, fmt.Errorf("pulling %s: %w", r.Name(), err)
	}
	if err := checkPlatform(cfg, platform, r.Name()); err != nil {
		return ImageRecord{}, err
	}
	blobs := make([]blobSource, len(m.Layers))
	for i, l := range m.Layers {
		blobs[i] = blobSource{digest: l.Digest, size: l.Size, open: func() (io.ReadCloser, error) {
			layer, err := img.LayerByDigest(l.Digest)
			if err != nil {
				return nil, err
			}
			return layer.Compressed()
		}}
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 3
	}
	rec, err := s.importImage(ctx, digest, raw, blobs, importOptions{progress: o.Progress, jobs: jobs, verify: o.Verify, checked: o.Checked, unlocked: o.Unlocked})
	if err != nil {
		return ImageRecord{}, fmt.Errorf("pulling %s: %w", r.Name(), err)
	}
	return rec, nil
}

// plainHTTPGuard refuses plain-HTTP requests to hosts off loopback unless
// allowed, whatever scheme the registry client falls back to (it tries
// HTTP for private-range addresses on its own).
type plainHTTPGuard struct {
	next  http.RoundTripper
	allow bool
}

// ErrPlainHTTP: a registry off loopback would be reached over plain HTTP
// and that was not allowed.
var ErrPlainHTTP = errors.New("plain HTTP refused: only loopback registries may use it unless allowed explicitly")

func (g *plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allow && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("%s: %w", req.URL.Host, ErrPlainHTTP)
	}
	return g.next.RoundTrip(req)
}

// isLoopback reports whether host is "localhost" or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
