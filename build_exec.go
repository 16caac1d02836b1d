package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"

	"github.com/ccsandbox/sandbox/internal/build"
	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// buildStepKind is the kind of the store records that map a build step's
// key to the snapshot it made.
const buildStepKind = "buildstep"

// maxSharedLayer bounds the changes a sandbox may have made before a
// following RUN gets a fresh one: a shared sandbox's snapshot copies all
// its changes again, so sharing pays only while they are small.
const maxSharedLayer = 16 << 20

// buildExec carries out a build's steps with sandboxes and the store; it
// is the build.Executor of Build.
type buildExec struct {
	o       *buildOptions
	store   *image.Store
	ids     idmap.Map
	sources map[string]*buildRef // WithBuildSource, by normalised name

	// live is the sandbox of the last RUN, kept for the next RUN on the
	// same filesystem; liveLayers are the layers its root now equals.
	live       *Instance
	liveLayers []v1.Hash
}

func newBuildExec(o *buildOptions, store *image.Store) (*buildExec, error) {
	e := &buildExec{o: o, store: store, ids: store.IDs(), sources: map[string]*buildRef{}}
	for n, src := range o.sources {
		r, err := e.sourceRef(src)
		if err != nil {
			return nil, fmt.Errorf("WithBuildSource(%q): %w", n, err)
		}
		e.sources[n] = r
		if k := normalName(n); k != "" {
			e.sources[k] = r
		}
	}
	return e, nil
}

// normalName returns an image reference's full name, or "" when name is
// not one.
func normalName(n string) string {
	ref, err := name.ParseReference(n)
	if err != nil {
		return ""
	}
	return ref.Name()
}

// sourceRef makes a ref of an image or a snapshot in the build's store.
func (e *buildExec) sourceRef(src Source) (*buildRef, error) {
	switch s := src.(type) {
	case *Image:
		if s.store != nil && s.store.Root() != e.store.Root() {
			return nil, fmt.Errorf("the image is in the store %s, not the build's %s (use the same WithCacheDir)", s.store.Root(), e.store.Root())
		}
		return e.imageRef(s), nil
	case *Snapshot:
		if s.store.Root() != e.store.Root() {
			return nil, fmt.Errorf("the snapshot is in the store %s, not the build's %s (use the same WithCacheDir)", s.store.Root(), e.store.Root())
		}
		return e.infoRef(s.info), nil
	}
	return nil, fmt.Errorf("a %T cannot be a build base", src)
}

func (e *buildExec) imageRef(img *Image) *buildRef {
	r := &buildRef{key: "image-" + img.digest.Hex, config: img.raw, layers: slices.Clone(img.layers), image: img}
	for _, id := range img.layers {
		r.dirs = append(r.dirs, e.store.LayerDir(id))
	}
	return r
}

// infoRef makes a ref of a snapshot. A layer that appears twice in its
// stack (a step that made the same changes as one below it) is kept at
// its highest place only: overlayfs refuses a directory twice among its
// lower layers, and the lower copy changes nothing the higher one does
// not decide again.
func (e *buildExec) infoRef(info *snapshot.Info) *buildRef {
	if layers := engine.HighestOnly(info.Layers); len(layers) != len(info.Layers) {
		clone := *info
		clone.Layers = layers
		info = &clone
	}
	r := &buildRef{key: info.Key, config: info.Config, layers: slices.Clone(info.Layers), info: info}
	for _, id := range info.Layers {
		r.dirs = append(r.dirs, e.store.LayerDir(id))
	}
	return r
}

// close stops the kept sandbox.
func (e *buildExec) close() {
	if e.live != nil {
		e.live.Close()
		e.live, e.liveLayers = nil, nil
	}
}

func (e *buildExec) IDs() idmap.Map { return e.ids }

func (e *buildExec) Resolve(ctx context.Context, n string, platform v1.Platform) (build.Ref, error) {
	r, ok := e.sources[n]
	if !ok {
		r, ok = e.sources[normalName(n)]
	}
	if ok {
		var cfg v1.ConfigFile
		if err := json.Unmarshal(r.config, &cfg); err != nil {
			return nil, fmt.Errorf("build source %q: its config: %w", n, err)
		}
		if cfg.Architecture != "" && (cfg.OS != platform.OS || cfg.Architecture != platform.Architecture) {
			return nil, fmt.Errorf("build source %q is for %s/%s, not the build's platform %s/%s", n, cfg.OS, cfg.Architecture, platform.OS, platform.Architecture)
		}
		return r, nil
	}
	po := e.o.pull
	po.storeOptions = e.o.storeOptions
	po.platform = platform
	var opts []PullOption
	opts = append(opts, pullOption(func(o *pullOptions) error { *o = po; return nil }))
	img, err := Pull(ctx, n, opts...)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", n, err)
	}
	return e.imageRef(img), nil
}

func (e *buildExec) Scratch(ctx context.Context, config []byte) (build.Ref, error) {
	sum := sha256.Sum256(config)
	return &buildRef{key: "image-" + hex.EncodeToString(sum[:]), config: config, image: Scratch()}, nil
}

func (e *buildExec) TempDir(ctx context.Context) (string, func(), error) {
	td, err := e.store.TempDir(ctx, "build")
	if err != nil {
		return "", nil, err
	}
	return td.Path(), func() { td.Remove() }, nil
}

func (e *buildExec) Commit(ctx context.Context, base build.Ref, dir string) (build.Ref, error) {
	info, err := snapshot.Commit(ctx, e.store, e.ids, dir, base.(*buildRef).parent())
	if err != nil {
		return nil, err
	}
	return e.infoRef(info), nil
}

func (e *buildExec) WithConfig(ctx context.Context, base build.Ref, config []byte) (build.Ref, error) {
	info, err := snapshot.WithConfig(ctx, e.store, base.(*buildRef).parent(), config)
	if err != nil {
		return nil, err
	}
	return e.infoRef(info), nil
}

func (e *buildExec) Lookup(ctx context.Context, key string) (build.Ref, bool, error) {
	rec, err := e.store.Record(buildStepKind, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	info, err := snapshot.Get(e.store, string(rec.Data))
	if errors.Is(err, snapshot.ErrNotFound) {
		return nil, false, nil // pruned since: the step runs again
	}
	if err != nil {
		return nil, false, err
	}
	return e.infoRef(info), true, nil
}

func (e *buildExec) Record(ctx context.Context, key string, ref build.Ref) error {
	r := ref.(*buildRef)
	return e.store.PutRecord(ctx, image.Record{Kind: buildStepKind, Name: key, Layers: r.layers, Data: []byte(r.key)})
}

// Run runs a RUN step in a sandbox: the kept one when its root is base's
// filesystem already (the last RUN left it so), else a new one.
func (e *buildExec) Run(ctx context.Context, base build.Ref, spec build.RunSpec) (build.Ref, error) {
	br := base.(*buildRef)
	inst := e.live
	if inst == nil || !slices.Equal(e.liveLayers, br.layers) {
		e.close()
		var err error
		inst, err = New(ctx, br.source(e.store), WithCacheDir(e.o.cacheDir), WithLogger(e.o.logger))
		if err != nil {
			return nil, err
		}
	}
	e.live, e.liveLayers = nil, nil
	keep := false
	defer func() {
		if keep {
			e.live = inst
		} else {
			inst.Close()
		}
	}()
	if spec.Script != nil {
		dir := path.Dir(spec.Script.Path)
		if err := inst.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := inst.WriteFile(spec.Script.Path, spec.Script.Data, 0o755); err != nil {
			return nil, err
		}
		defer inst.RemoveAll(dir)
	}
	cmd := inst.CommandContext(ctx, spec.Args[0], spec.Args[1:]...)
	cmd.Env, cmd.Dir, cmd.User = spec.Env, spec.Dir, spec.User
	cmd.Stdout, cmd.Stderr = spec.Output, spec.Output
	if err := cmd.Run(); err != nil {
		return nil, err
	}
	if spec.Script != nil {
		if err := inst.RemoveAll(path.Dir(spec.Script.Path)); err != nil {
			return nil, err
		}
	}
	snap, err := inst.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	snap.Close() // its record keeps its layers
	r := e.infoRef(snap.info)
	if e.shareable(inst, r) {
		keep = true
		e.liveLayers = r.layers
	}
	return r, nil
}

// shareable reports whether the next RUN on r may use inst, which made
// it, instead of a new sandbox: only when nothing the command started is
// still running there (a new sandbox would have none), and the changes
// are small (see maxSharedLayer).
func (e *buildExec) shareable(inst *Instance, r *buildRef) bool {
	if inst.parent.store != nil && inst.parent.store != e.store && inst.parent.store.Root() != e.store.Root() {
		return false
	}
	if n := len(r.layers); n > len(inst.parent.layers) {
		li, err := e.store.Layer(r.layers[n-1])
		if err != nil || li.Size > maxSharedLayer {
			return false
		}
	}
	procs, err := inst.ReadDir("proc")
	if err != nil {
		return false
	}
	for _, p := range procs {
		if pid, err := strconv.Atoi(p.Name()); err == nil && pid != 1 {
			return false
		}
	}
	return true
}
