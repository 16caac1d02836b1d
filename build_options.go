package sandbox

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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

	sourceDateEpoch time.Time // WithSourceDateEpoch; zero: none given
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
// *Image or a *Snapshot, instead of pulling an image of that name. Names
// match as image references do ("busybox" is also "busybox:latest" and
// "docker.io/library/busybox"); a stage of the same name wins, as in
// Docker. src must be in the build's layer store (WithCacheDir). An empty
// name, a nil src, or another kind of Source is an error.
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
		case *Snapshot:
			if s == nil {
				return errors.New("WithBuildSource: nil snapshot")
			}
			if s.info.Host != "" {
				return fmt.Errorf("WithBuildSource(%q): a snapshot of the host image cannot be a build base", name)
			}
		default:
			return fmt.Errorf("WithBuildSource(%q): a %T cannot be a build base (use an *Image or a *Snapshot)", name, src)
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
	if !o.sourceDateEpoch.IsZero() {
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
