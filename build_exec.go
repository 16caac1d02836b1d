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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
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
// is the dockerfile.Executor of Build.
type buildExec struct {
	o       *buildOptions
	store   *image.Store
	ids     idmap.Map
	sources map[string]*buildRef // WithBuildSource, by normalised name

	hostOnce  sync.Once // hostLayer, when a stage stands on the host image
	hostLayer string
	hostErr   error

	// live are the sandboxes of the last RUNs of the stages, each kept
	// for the next RUN on the filesystem it left.
	mu   sync.Mutex
	live []liveSandbox // guarded by mu; at most maxLive
}

// liveSandbox is a sandbox kept for the next RUN on its filesystem.
type liveSandbox struct {
	inst    *Instance
	key     string    // the key of the step it ran last (see dockerfile.RunSpec)
	layers  []v1.Hash // what its root now equals
	network bool      // it has the build's egress
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
	case *HostSource:
		rs, err := s.rootfs(context.Background(), &e.o.storeOptions)
		if err != nil {
			return nil, err
		}
		e.hostOnce.Do(func() { e.hostLayer = rs.layers[0] })
		return &buildRef{key: rs.parent.key, config: rs.parent.config, host: rs.parent.host, dirs: []string{rs.layers[0]}}, nil
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
	r := &buildRef{key: info.Key, config: info.Config, layers: slices.Clone(info.Layers), info: info, host: info.Host}
	if info.Host != "" {
		r.dirs = append(r.dirs, e.hostLayerDir())
	}
	for _, id := range info.Layers {
		r.dirs = append(r.dirs, e.store.LayerDir(id))
	}
	return r
}

// hostLayerDir returns the host image's generated layer, under which a
// snapshot of a stage on the host image stands.
func (e *buildExec) hostLayerDir() string {
	e.hostOnce.Do(func() {
		rs, err := HostImage().rootfs(context.Background(), &e.o.storeOptions)
		if err != nil {
			e.hostErr = err
			return
		}
		e.hostLayer = rs.layers[0]
	})
	return e.hostLayer
}

// close stops the kept sandboxes.
func (e *buildExec) close() {
	e.mu.Lock()
	live := e.live
	e.live = nil
	e.mu.Unlock()
	for _, l := range live {
		l.inst.Close()
	}
}

func (e *buildExec) IDs() idmap.Map { return e.ids }

// parent describes r as what a snapshot of the build stands on.
func (e *buildExec) parent(r *buildRef) snapshot.Parent {
	p := r.parent()
	if h := e.o.helper; h != nil {
		p.BeforeAdd = h.BeforeAdd
	}
	return p
}

// charge tells a network helper's build that it has written the store
// record of kind and name (a snapshot's, a step's; see
// helper.Build.Charge); its error stops the build.
func (e *buildExec) charge(kind, name string) error {
	if h := e.o.helper; h != nil && h.Charge != nil {
		return h.Charge(kind, name)
	}
	return nil
}

// chargeSnapshot charges the record of info (see charge).
func (e *buildExec) chargeSnapshot(info *snapshot.Info) error {
	return e.charge(snapshot.RecordKind, info.Key)
}

// stepName is the name of the record of the step keyed key: the key,
// within the build's scope on a network helper.
func (e *buildExec) stepName(key string) string {
	if h := e.o.helper; h != nil {
		return h.Scope + "-" + key
	}
	return key
}

func (e *buildExec) Resolve(ctx context.Context, n string, platform v1.Platform) (dockerfile.Ref, error) {
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
	if h := e.o.helper; h != nil {
		img, err := helperImage(ctx, h, e.store, n, platform)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", n, err)
		}
		return e.imageRef(img), nil
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

func (e *buildExec) Scratch(ctx context.Context, config []byte) (dockerfile.Ref, error) {
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

func (e *buildExec) Commit(ctx context.Context, base dockerfile.Ref, dir string) (dockerfile.Ref, error) {
	info, err := snapshot.Commit(ctx, e.store, e.ids, dir, e.parent(base.(*buildRef)))
	if err != nil {
		return nil, err
	}
	if err := e.chargeSnapshot(info); err != nil {
		return nil, err
	}
	return e.infoRef(info), nil
}

func (e *buildExec) WithConfig(ctx context.Context, base dockerfile.Ref, config []byte) (dockerfile.Ref, error) {
	info, err := snapshot.WithConfig(ctx, e.store, e.parent(base.(*buildRef)), config)
	if err != nil {
		return nil, err
	}
	if err := e.chargeSnapshot(info); err != nil {
		return nil, err
	}
	return e.infoRef(info), nil
}

func (e *buildExec) Lookup(ctx context.Context, key string) (dockerfile.Ref, bool, error) {
	rec, err := e.store.Record(buildStepKind, e.stepName(key))
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

func (e *buildExec) Record(ctx context.Context, key string, ref dockerfile.Ref) error {
	r := ref.(*buildRef)
	if err := e.store.PutRecord(ctx, image.Record{Kind: buildStepKind, Name: e.stepName(key), Layers: r.layers, Data: []byte(r.key)}); err != nil {
		return err
	}
	return e.charge(buildStepKind, e.stepName(key))
}

// Run runs a RUN step in a sandbox: a kept one when the step follows the
// RUN that left it (see dockerfile.RunSpec's After), its root is base's
// filesystem already and the step mounts nothing, else a new one with the
// step's mounts and network.
func (e *buildExec) Run(ctx context.Context, base dockerfile.Ref, spec dockerfile.RunSpec) (dockerfile.Ref, error) {
	br := base.(*buildRef)
	if br.host != "" && e.hostErr != nil {
		return nil, e.hostErr
	}
	var inst *Instance
	if len(spec.Binds) == 0 {
		inst = e.takeLive(spec.After, br.layers, spec.Network)
	}
	if inst == nil {
		if e.o.helper != nil {
			e.close() // a network helper's build runs one sandbox at a time: it counts as one
		}
		opts := []Option{WithCacheDir(e.o.cacheDir), WithLogger(e.o.logger)}
		if spec.Network {
			opts = append(opts, WithNetwork())
		}
		if e.o.dialer != nil {
			opts = append(opts, WithDialer(e.o.dialer))
		}
		if e.o.resolver != nil {
			opts = append(opts, WithDNSResolver(e.o.resolver))
		}
		if h := e.o.helper; h != nil {
			opts = append(opts, instanceOption(func(o *newOptions) error { o.inProcess = true; return nil }))
			if h.MemoryMB > 0 {
				opts = append(opts, WithMemoryMB(h.MemoryMB))
			}
			if h.PidsMax > 0 {
				opts = append(opts, WithPidsLimit(h.PidsMax))
			}
		}
		for _, b := range spec.Binds {
			if b.Writable {
				opts = append(opts, WithWritableMount(b.Source, b.Target))
			} else {
				opts = append(opts, WithMount(b.Source, b.Target))
			}
		}
		var err error
		inst, err = New(ctx, br.source(e.store), opts...)
		if err != nil {
			return nil, err
		}
	}
	keep := false
	var r *buildRef
	defer func() {
		if keep {
			e.keepLive(liveSandbox{inst: inst, key: spec.Key, layers: r.layers, network: spec.Network})
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
	excludes, err := stubExcludes(inst, spec)
	if err != nil {
		return nil, err
	}
	sopts := []SnapshotOption{WithExcludes(excludes...)}
	if h := e.o.helper; h != nil {
		sopts = append(sopts, snapshotOption(func(o *snapshotOptions) error { o.beforeAdd = h.BeforeAdd; return nil }))
	}
	snap, err := inst.Snapshot(ctx, sopts...)
	if err != nil {
		return nil, err
	}
	snap.Close() // its record keeps its layers
	// Charged; a share it fills stops the build at its next step, not
	// here, where the error would read as the command's.
	e.chargeSnapshot(snap.info)
	r = e.infoRef(snap.info)
	keep = len(spec.Binds) == 0 && spec.Key != "" && e.shareable(inst, r)
	return r, nil
}

// stubExcludes returns the snapshot excludes that leave out what the
// step's mount targets made in the root: each target, and each directory
// made for one that holds nothing else. The directories are read through
// the sandbox's agent.
func stubExcludes(inst *Instance, spec dockerfile.RunSpec) ([]string, error) {
	if len(spec.Stubs) == 0 {
		return nil, nil
	}
	gone := map[string]bool{}
	for _, b := range spec.Binds {
		gone[b.Target] = true
	}
	var out []string
	for _, p := range spec.Stubs { // deepest first
		if !gone[p] {
			entries, err := inst.ReadDir(strings.TrimPrefix(p, "/"))
			if err != nil {
				continue // not a directory, or removed: the snapshot says what it is
			}
			if slices.ContainsFunc(entries, func(d fs.DirEntry) bool { return !gone[path.Join(p, d.Name())] }) {
				continue
			}
			gone[p] = true
		}
		out = append(out, escapeGlob(p))
	}
	return out, nil
}

// escapeGlob quotes the pattern characters of a path, for WithExcludes.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, c := range p {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// maxLive bounds the sandboxes kept between RUN steps.
func (e *buildExec) maxLive() int {
	if n := e.o.parallelism; n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// takeLive returns the sandbox kept from the step whose key is after, if
// any, when its root is layers and its network is as asked, and stops
// keeping it. A sandbox whose files are those of another chain of steps
// is not taken: the same files may come of other instructions, which may
// have left other things behind.
func (e *buildExec) takeLive(after string, layers []v1.Hash, network bool) *Instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, l := range e.live {
		if after != "" && l.key == after && l.network == network && slices.Equal(l.layers, layers) {
			e.live = slices.Delete(e.live, i, i+1)
			return l.inst
		}
	}
	return nil
}

// keepLive keeps l for the next RUN on its filesystem, stopping the
// oldest kept sandbox when there are too many.
func (e *buildExec) keepLive(l liveSandbox) {
	e.mu.Lock()
	e.live = append(e.live, l)
	var drop []liveSandbox
	for len(e.live) > e.maxLive() {
		drop = append(drop, e.live[0])
		e.live = e.live[1:]
	}
	e.mu.Unlock()
	for _, d := range drop {
		d.inst.Close()
	}
}

// CacheMount holds the store's directory of a cache mount for a step.
func (e *buildExec) CacheMount(ctx context.Context, id string, sharing dockerfile.Sharing, init func(string) error) (string, func(), error) {
	mode := image.CacheShared
	switch sharing {
	case dockerfile.SharingPrivate:
		mode = image.CachePrivate
	case dockerfile.SharingLocked:
		mode = image.CacheLocked
	}
	if h := e.o.helper; h != nil {
		id = h.Scope + "\x00" + id
	}
	cm, err := e.store.CacheMount(ctx, id, mode, init)
	if err != nil {
		return "", nil, err
	}
	return cm.Path, cm.Release, nil
}

// Rebase stacks layer's layers (made on scratch) onto base.
func (e *buildExec) Rebase(ctx context.Context, base, layer dockerfile.Ref) (dockerfile.Ref, error) {
	b := base.(*buildRef)
	parent := e.parent(b)
	info := b.info
	for _, id := range layer.(*buildRef).layers {
		var err error
		if info, err = snapshot.Stack(ctx, e.store, id, parent); err != nil {
			return nil, err
		}
		if err := e.chargeSnapshot(info); err != nil {
			return nil, err
		}
		parent = snapshot.Parent{Key: info.Key, Layers: info.Layers, Host: info.Host, Config: b.config, BeforeAdd: parent.BeforeAdd}
	}
	if info == nil {
		return base, nil
	}
	return e.infoRef(info), nil
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
