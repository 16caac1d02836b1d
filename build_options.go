package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
	"github.com/ccsandbox/sandbox/internal/helper"
)

// BuildOption configures Build. StoreOptions (WithCacheDir, WithLogger)
// and WithPlatform are BuildOptions too.
type BuildOption interface {
	applyBuild(*buildOptions) error
}

// buildOptions configures Build.
type buildOptions struct {
	storeOptions
	pull          pullOptions // how FROM images not given as sources are pulled
	contextDir    string
	args          map[string]string
	target        string
	noCache       bool
	noCacheStages []string
	progress      func(BuildProgress)
	sources       map[string]Source // by name as given
	network       bool
	dialer        DialFunc      // nil: DefaultDialer()
	resolver      *net.Resolver // RUN steps' DNS; nil: net.DefaultResolver
	secrets       map[string]dockerfile.Secret
	ssh           map[string]string
	parallelism   int // 0: GOMAXPROCS

	sourceDateEpoch time.Time // WithSourceDateEpoch; zero: none given

	// helper is the build a network helper runs for a client (see
	// buildOnHelper); nil here. Build takes from it what a helper adds:
	// FROM images from the helper's pulls for the client, every new
	// layer marked before it enters the store and every record charged,
	// the step cache and cache mounts keyed by the client (Scope), and
	// limits on each step's sandbox.
	helper *helper.Build
}

type buildOption func(*buildOptions) error

func (f buildOption) applyBuild(o *buildOptions) error { return f(o) }

// applyBuild makes WithPlatform a BuildOption: the images FROM names are
// taken for that platform, and the build's TARGETPLATFORM is it.
func (o imageOption) applyBuild(b *buildOptions) error { return o.pull(&b.pull) }

// WithContextDir sets the build context: the directory COPY and ADD read
// from, less what its .dockerignore leaves out. Without it the build has
// no context, and COPY or ADD from it fails. An empty dir is an error.
func WithContextDir(dir string) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if dir == "" {
			return errors.New("WithContextDir: empty directory")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("WithContextDir: %w", err)
		}
		o.contextDir = abs
		return nil
	})
}

// WithBuildArg sets the build argument key to value (docker build
// --build-arg). An argument no ARG declares is reported as a warning in
// the progress, as Docker does; the proxy variables (HTTP_PROXY and the
// like) need no ARG. An empty key, or one with "=", is an error.
func WithBuildArg(key, value string) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if key == "" || strings.ContainsAny(key, "=\x00") {
			return fmt.Errorf("WithBuildArg: invalid name %q", key)
		}
		if o.args == nil {
			o.args = map[string]string{}
		}
		o.args[key] = value
		return nil
	})
}

// WithBuildArgs sets several build arguments; see WithBuildArg.
func WithBuildArgs(args map[string]string) BuildOption {
	return buildOption(func(o *buildOptions) error {
		for k, v := range maps.All(args) {
			if err := WithBuildArg(k, v).applyBuild(o); err != nil {
				return err
			}
		}
		return nil
	})
}

// WithTarget builds the named stage (matched without regard to case) and
// only the stages it needs, instead of the last stage. An empty name is
// an error; a name the Dockerfile lacks makes Build fail.
func WithTarget(stage string) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if stage == "" {
			return errors.New("WithTarget: empty stage name")
		}
		o.target = stage
		return nil
	})
}

// WithNoCache makes Build run every step again instead of taking results
// from the cache: every stage's steps, or only those of the named stages.
// Results are still recorded for later builds.
func WithNoCache(stages ...string) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if len(stages) == 0 {
			o.noCache = true
			return nil
		}
		for _, s := range stages {
			if s == "" {
				return errors.New("WithNoCache: empty stage name")
			}
		}
		o.noCacheStages = append(o.noCacheStages, stages...)
		return nil
	})
}

// WithBuildProgress makes Build call f as steps start, print output and
// end; calls never overlap. BuildProgressWriter returns a ready-made f.
// A nil f is an error.
func WithBuildProgress(f func(BuildProgress)) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if f == nil {
			return errors.New("WithBuildProgress: nil function")
		}
		o.progress = f
		return nil
	})
}

// WithBuildSource makes FROM name and COPY --from=name take src, an
// *Image, a *Snapshot or HostImage(), instead of pulling an image of that
// name. Names match as image references do ("busybox" is also
// "busybox:latest" and "docker.io/library/busybox"); a stage of the same
// name wins, as in Docker. src must be in the build's layer store
// (WithCacheDir). A stage on the host image runs the host's programs
// (its /usr and the like, read-only); COPY --from such a stage sees the
// files its steps made, not the host's, and its result cannot be
// exported. An empty name, a nil src, or another kind of Source is an
// error.
func WithBuildSource(name string, src Source) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if name == "" {
			return errors.New("WithBuildSource: empty name")
		}
		switch s := src.(type) {
		case *Image:
			if s == nil {
				return errors.New("WithBuildSource: nil image")
			}
			if s.remote != nil {
				return fmt.Errorf("WithBuildSource: %w", errRemoteImage(s))
			}
		case *Snapshot:
			if s == nil {
				return errors.New("WithBuildSource: nil snapshot")
			}
			if s.onHelper != nil {
				return fmt.Errorf("WithBuildSource: %w", s.onHelper.errHere(s))
			}
		case *HostSource:
			if s == nil {
				return errors.New("WithBuildSource: nil host source")
			}
		default:
			return fmt.Errorf("WithBuildSource(%q): a %T cannot be a build base (use an *Image, a *Snapshot or HostImage())", name, src)
		}
		if o.sources == nil {
			o.sources = map[string]Source{}
		}
		o.sources[name] = src
		return nil
	})
}

// WithPullOptions sets how Build pulls the images its FROM lines name
// that no WithBuildSource gives: pull policy, credentials, transport.
// The build's cache directory is always the store pulled into.
func WithPullOptions(opts ...PullOption) BuildOption {
	return buildOption(func(o *buildOptions) error {
		for _, p := range opts {
			if p == nil {
				return errors.New("WithPullOptions: nil option")
			}
			if err := p.applyPull(&o.pull); err != nil {
				return fmt.Errorf("WithPullOptions: %w", err)
			}
		}
		return nil
	})
}

// WithBuildNetwork gives the build's RUN steps egress, as WithNetwork
// gives a sandbox: every flow leaves through the build's dialer
// (WithBuildDialer, else DefaultDialer, which refuses the host's
// loopback), and lets ADD fetch http(s) URLs through the same dialer.
// Without it, steps have no network and a failing RUN's error says so.
// RUN --network=none turns it off for one step.
func WithBuildNetwork() BuildOption {
	return buildOption(func(o *buildOptions) error {
		o.network = true
		return nil
	})
}

// WithBuildDialer sets the dialer every connection of the build goes
// through (RUN steps' flows, ADD's fetches), for allow-lists, recording,
// or a mirror. It does not turn the network on by itself (see
// WithBuildNetwork). A nil d is an error.
func WithBuildDialer(d DialFunc) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if d == nil {
			return errors.New("WithBuildDialer: nil dialer")
		}
		o.dialer = d
		return nil
	})
}

// WithBuildDNSResolver sets the resolver that answers the DNS queries of
// RUN steps with the network, as WithDNSResolver does for a sandbox
// (net.DefaultResolver otherwise, outside the build's dialer). A nil r is
// an error.
func WithBuildDNSResolver(r *net.Resolver) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if r == nil {
			return errors.New("WithBuildDNSResolver: nil resolver")
		}
		o.resolver = r
		return nil
	})
}

// WithBuildSecret gives RUN --mount=type=secret,id=id the value (copied).
// The value reaches only the steps that mount it, as a file in host
// memory bound read-only at the mount's target (default
// /run/secrets/<id>) or as the variable env= names: never a layer, a
// cache key, the history, a progress event or an error. An empty id is an
// error.
func WithBuildSecret(id string, value []byte) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if id == "" {
			return errors.New("WithBuildSecret: empty id")
		}
		if o.secrets == nil {
			o.secrets = map[string]dockerfile.Secret{}
		}
		o.secrets[id] = dockerfile.Secret{Value: append([]byte{}, value...)} // never nil: nil means a file
		return nil
	})
}

// WithBuildSecretFile is WithBuildSecret with the value read from the
// host file path when a step needs it. An empty id, or a path that is
// not a readable regular file, is an error.
func WithBuildSecretFile(id, path string) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if id == "" {
			return errors.New("WithBuildSecretFile: empty id")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return fmt.Errorf("WithBuildSecretFile(%q): %w", id, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("WithBuildSecretFile(%q): %w", id, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("WithBuildSecretFile(%q): %s is not a regular file", id, abs)
		}
		if o.secrets == nil {
			o.secrets = map[string]dockerfile.Secret{}
		}
		o.secrets[id] = dockerfile.Secret{File: abs}
		return nil
	})
}

// WithBuildSSH forwards the SSH agent listening on the host socket path to
// the steps that RUN --mount=type=ssh,id=id (id "default" when the mount
// names none): each gets a socket of its own at the mount's target
// (SSH_AUTH_SOCK points at the first), whose connections the build
// relays to path while the step runs. An empty id, or a path that is not
// a socket, is an error.
func WithBuildSSH(id, path string) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if id == "" {
			return errors.New("WithBuildSSH: empty id")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return fmt.Errorf("WithBuildSSH(%q): %w", id, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("WithBuildSSH(%q): %w", id, err)
		}
		if fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("WithBuildSSH(%q): %s is not a socket", id, abs)
		}
		if o.ssh == nil {
			o.ssh = map[string]string{}
		}
		o.ssh[id] = abs
		return nil
	})
}

// WithBuildParallelism bounds the stages that build at the same time
// (stages that do not need each other's results run at once): n ≥ 1;
// the default is runtime.GOMAXPROCS(0). A smaller n is an error.
func WithBuildParallelism(n int) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if n < 1 {
			return fmt.Errorf("WithBuildParallelism: %d", n)
		}
		o.parallelism = n
		return nil
	})
}

// WithSourceDateEpoch pins the build's times to t, as BuildKit's
// SOURCE_DATE_EPOCH does, so that the same Dockerfile and files give the
// same image whenever and wherever they are built: the image config's
// created time and every history entry's are t (to the second), and no
// file, directory or symlink that COPY, ADD or WORKDIR writes into a layer
// is dated later than t (earlier times are kept). The result's CacheKey is
// then the same on every build; its exported digest too, unless a RUN
// step writes files: those keep the times they were written at. Without
// this option, Build takes
// SOURCE_DATE_EPOCH from the environment (seconds since 1970, as
// reproducible-builds.org defines it). Steps built with an epoch are
// cached apart from steps built without one. A time before 1970 is an
// error.
func WithSourceDateEpoch(t time.Time) BuildOption {
	return buildOption(func(o *buildOptions) error {
		if t.Before(time.Unix(0, 0)) {
			return fmt.Errorf("WithSourceDateEpoch: %v is before 1970", t)
		}
		o.sourceDateEpoch = time.Unix(t.Unix(), 0)
		return nil
	})
}

// epoch returns the build's SourceDateEpoch: the option's, else
// SOURCE_DATE_EPOCH's, else the zero time (none). A SOURCE_DATE_EPOCH
// that is not a whole number of seconds since 1970 is an error.
func (o *buildOptions) epoch() (time.Time, error) {
	if !o.sourceDateEpoch.IsZero() || o.helper != nil { // a helper's environment is not its clients'
		return o.sourceDateEpoch, nil
	}
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970, a whole number", v)
	}
	return time.Unix(n, 0), nil
}
