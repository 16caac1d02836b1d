package dockerfile

import (
	"context"
	"io"

	"github.com/ccsandbox/sandbox/internal/idmap"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Ref is a root filesystem with its image config: a base image, or what a
// step made. Refs are immutable.
type Ref interface {
	// Key identifies the content: equal keys mean equal files and config.
	Key() string
	// Config returns the OCI image config (JSON).
	Config() []byte
	// Layers returns the layer directories, in overlay format (see
	// internal/image), lowest first; they must not be written to.
	Layers() []string
}

// RunSpec is a command for Executor.Run.
type RunSpec struct {
	Args   []string  // the command line; Args[0] is looked up in PATH
	Env    []string  // the whole environment, KEY=value
	Dir    string    // the working directory (absolute)
	User   string    // user[:group], names or ids; "" is root
	Script *Script   // a file written before the command runs, removed after
	Output io.Writer // standard output and standard error
	// Network gives the step the build's egress; without it the step
	// has no network at all.
	Network bool
	// Binds are host paths mounted for this step only (RUN --mount),
	// each after those that hold it.
	Binds []Bind
	// Stubs are the paths the binds' targets made in the root because
	// the base lacked them, deepest first: the result keeps none of
	// them that holds nothing but other stubs.
	Stubs []string
	// After is the key of the filesystem step the command runs after (or
	// of the stage's FROM), and Key the key of this step. Keys name the
	// instructions that made a filesystem, not its files: a sandbox the
	// Executor keeps from one RUN may serve only a RUN whose After is that
	// RUN's Key, so that what the sandbox holds besides its files (its
	// /etc/hosts, /dev, /dev/shm, IPC objects, processes) is what the
	// same instructions made.
	After, Key string
}

// Bind is a host path mounted into a RUN step's sandbox.
type Bind struct {
	Source   string // the host file or directory
	Target   string // absolute, with no symlink in the base's root
	Writable bool
}

// Sharing is how concurrent steps share a cache mount.
type Sharing string

// The sharing modes of RUN --mount=type=cache.
const (
	SharingShared  Sharing = "shared"  // all users at once
	SharingPrivate Sharing = "private" // a directory of its own for a user that finds it busy
	SharingLocked  Sharing = "locked"  // one user at a time; the others wait
)

// Script is a file a RUN heredoc needs in the sandbox while it runs.
type Script struct {
	Path string // absolute path inside the sandbox
	Data []byte // written with mode 0755
}

// Executor is what a build needs from the SDK. Refs it returns are the
// only refs given back to it.
type Executor interface {
	// Resolve returns the image a FROM or COPY --from names (not a
	// stage; "scratch" never reaches it). The ref's Key must derive
	// from the image's digest, never from the name.
	Resolve(ctx context.Context, name string, platform v1.Platform) (Ref, error)
	// Scratch returns the empty filesystem with the given config.
	Scratch(ctx context.Context, config []byte) (Ref, error)
	// Run runs spec in a sandbox started on base and returns the
	// filesystem it left, with base's config. A non-zero exit is an error.
	Run(ctx context.Context, base Ref, spec RunSpec) (Ref, error)
	// TempDir makes an empty directory where a step can prepare a layer
	// for Commit; remove deletes what is left of it.
	TempDir(ctx context.Context) (dir string, remove func(), err error)
	// Commit adds dir (prepared in a TempDir, in overlay format, owned as
	// IDs says) on top of base, with base's config. dir is consumed.
	Commit(ctx context.Context, base Ref, dir string) (Ref, error)
	// WithConfig returns base's filesystem with another config.
	WithConfig(ctx context.Context, base Ref, config []byte) (Ref, error)
	// Lookup returns the ref recorded for a step key, if the cache has it
	// (and its layers are still there).
	Lookup(ctx context.Context, key string) (Ref, bool, error)
	// Record remembers ref as the result of the step key.
	Record(ctx context.Context, key string, ref Ref) error
	// IDs is the id mapping of the layer store: how container ids are
	// stored on the host.
	IDs() idmap.Map
	// CacheMount returns the directory that keeps a cache mount's files
	// across builds, by id, and release, to call once the step is over.
	// init fills a directory being made, before any user sees it.
	CacheMount(ctx context.Context, id string, sharing Sharing, init func(dir string) error) (dir string, release func(), err error)
	// Rebase stacks the layers that layer, a ref made on Scratch, adds
	// onto base, with base's config.
	Rebase(ctx context.Context, base, layer Ref) (Ref, error)
}
