package sandbox

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pullOptions configures Pull.
type pullOptions struct {
	storeOptions
	platform  v1.Platform // zero: the host's
	policy    PullPolicy
	keychain  authn.Keychain
	auth      authn.Authenticator
	transport http.RoundTripper
	plainHTTP bool
	progress  func(Progress)
}

// loadOptions configures LoadOCILayout and LoadDockerArchive.
type loadOptions struct {
	storeOptions
	platform v1.Platform // zero: the host's
	tag      string
	digest   v1.Hash
}

// exportOptions configures Image.WriteOCILayout and WriteDockerArchive.
type exportOptions struct {
	tag string
}

// ImageOption is accepted by Pull, LoadOCILayout and LoadDockerArchive,
// and by Build (for the images its FROM lines name, and the platform it
// builds for).
type ImageOption interface {
	PullOption
	LoadOption
	BuildOption
}

// ExportOption configures Image.WriteOCILayout and Image.WriteDockerArchive.
type ExportOption interface {
	applyExport(*exportOptions) error
}

// TagOption is accepted by the loads, to choose an image, and by the
// exports, to name one.
type TagOption interface {
	LoadOption
	ExportOption
}

// PullPolicy says when Pull asks the registry.
type PullPolicy int

const (
	// PullIfNotPresent uses the image the store already has for the
	// reference and platform, and asks the registry only when it has
	// none. It is the default.
	PullIfNotPresent PullPolicy = iota
	// PullAlways asks the registry what the reference names now; layers
	// already in the store are not fetched again.
	PullAlways
	// PullNever uses only what the store has: Pull fails with an error
	// matching fs.ErrNotExist when the image was never pulled.
	PullNever
)

func (p PullPolicy) String() string {
	switch p {
	case PullIfNotPresent:
		return "IfNotPresent"
	case PullAlways:
		return "Always"
	case PullNever:
		return "Never"
	}
	return fmt.Sprintf("PullPolicy(%d)", int(p))
}

type pullOption func(*pullOptions) error

func (f pullOption) applyPull(o *pullOptions) error { return f(o) }

type loadOption func(*loadOptions) error

func (f loadOption) applyLoad(o *loadOptions) error { return f(o) }

// imageOption applies one setting to pulls and loads.
type imageOption struct {
	pull func(*pullOptions) error
	load func(*loadOptions) error
}

func (o imageOption) applyPull(p *pullOptions) error { return o.pull(p) }
func (o imageOption) applyLoad(l *loadOptions) error { return o.load(l) }

// tagOption applies a tag to loads and exports.
type tagOption string

func (t tagOption) applyLoad(o *loadOptions) error {
	if t == "" {
		return errors.New("WithTag: empty tag")
	}
	o.tag = string(t)
	return nil
}

func (t tagOption) applyExport(o *exportOptions) error {
	if t == "" {
		return errors.New("WithTag: empty tag")
	}
	o.tag = string(t)
	return nil
}

// WithPlatform chooses the platform of the image, as "os/arch" or
// "os/arch/variant" ("linux/arm64"), among those an index offers; an
// image for another platform is refused. The default is the host's
// (linux and the program's GOARCH). A malformed platform is an error.
// Sandboxes run only images for the host's platform.
func WithPlatform(platform string) ImageOption {
	p, err := image.ParsePlatform(platform)
	set := func(dst *v1.Platform) error {
		if err != nil {
			return fmt.Errorf("WithPlatform: %w", err)
		}
		*dst = p
		return nil
	}
	return imageOption{
		pull: func(o *pullOptions) error { return set(&o.platform) },
		load: func(o *loadOptions) error { return set(&o.platform) },
	}
}

// WithPullPolicy sets when Pull asks the registry; the default is
// PullIfNotPresent. An unknown policy is an error.
func WithPullPolicy(p PullPolicy) PullOption {
	return pullOption(func(o *pullOptions) error {
		if p < PullIfNotPresent || p > PullNever {
			return fmt.Errorf("WithPullPolicy: unknown policy %d", int(p))
		}
		o.policy = p
		return nil
	})
}

// WithAuth makes Pull log in to the registry with a user name and a
// password (or token) instead of the credentials of the Docker config.
// An empty user name, or using it with WithKeychain, is an error.
func WithAuth(username, password string) PullOption {
	return pullOption(func(o *pullOptions) error {
		if username == "" {
			return errors.New("WithAuth: empty user name")
		}
		if o.keychain != nil {
			return errors.New("WithAuth: WithKeychain is given too")
		}
		o.auth = &authn.Basic{Username: username, Password: password}
		return nil
	})
}

// WithKeychain makes Pull take credentials from kc instead of the default
// keychain (the Docker config file, $DOCKER_CONFIG, and the credential
// helpers it names). A nil keychain, or using it with WithAuth, is an
// error.
func WithKeychain(kc authn.Keychain) PullOption {
	return pullOption(func(o *pullOptions) error {
		if kc == nil {
			return errors.New("WithKeychain: nil keychain")
		}
		if o.auth != nil {
			return errors.New("WithKeychain: WithAuth is given too")
		}
		o.keychain = kc
		return nil
	})
}

// WithProgress makes Pull call f as layers are fetched: once when each
// layer starts (or is found in the store), as its bytes arrive, and when
// it is complete. Calls never overlap. ProgressBar returns a ready-made f
// for terminals. A nil f is an error.
func WithProgress(f func(Progress)) PullOption {
	return pullOption(func(o *pullOptions) error {
		if f == nil {
			return errors.New("WithProgress: nil function")
		}
		o.progress = f
		return nil
	})
}

// WithPlainHTTP lets Pull reach registries that are not on loopback over
// plain HTTP (with no TLS). Without it only loopback registries
// (localhost, 127.0.0.0/8, ::1) may answer over plain HTTP, and a pull
// that would use it elsewhere fails.
func WithPlainHTTP() PullOption {
	return pullOption(func(o *pullOptions) error {
		o.plainHTTP = true
		return nil
	})
}

// WithTransport makes Pull send its HTTP requests through rt (a proxy,
// extra CA certificates, a test server) instead of the default transport.
// The plain-HTTP rule of WithPlainHTTP still applies. A nil rt is an
// error.
func WithTransport(rt http.RoundTripper) PullOption {
	return pullOption(func(o *pullOptions) error {
		if rt == nil {
			return errors.New("WithTransport: nil transport")
		}
		o.transport = rt
		return nil
	})
}

// WithTag, for LoadOCILayout, chooses the image whose
// org.opencontainers.image.ref.name (or io.containerd.image.name)
// annotation is tag; for LoadDockerArchive, the image with that RepoTag.
// For the exports it names the image written. An empty tag is an error.
func WithTag(tag string) TagOption {
	return tagOption(tag)
}

// WithDigest, for LoadOCILayout, chooses the index entry with that digest
// ("sha256:..."): an image's manifest, or an index of which the platform
// is then chosen; for LoadDockerArchive, the image whose config has it
// (the image ID docker shows). A malformed digest is an error.
func WithDigest(digest string) LoadOption {
	return loadOption(func(o *loadOptions) error {
		h, err := v1.NewHash(digest)
		if err != nil {
			return fmt.Errorf("WithDigest: %w", err)
		}
		o.digest = h
		return nil
	})
}
