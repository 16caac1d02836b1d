package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Snapshot is a frozen copy of a sandbox's filesystem: the changes it made
// to what it started from, kept as a content-addressed layer in the store
// on top of the source's layers. A Snapshot is a source for New (every
// sandbox started from it sees its files and none sees another's writes),
// can be reopened by its key from any process (OpenSnapshot), and exported
// as an OCI image. Close it when done: until then, Prune keeps its layers.
type Snapshot struct {
	info  *snapshot.Info
	store *image.Store // nil on a helper
	cfg   *v1.ConfigFile
	lease *image.Lease // nil on a helper
	// onHelper, for a snapshot of a network helper's sandbox, says where
	// it lives: in that helper's store, as an image of that digest.
	onHelper *helperSnapshot

	once sync.Once
}

// snapshotParent is what a snapshot of an instance stands on: the source
// the instance started from.
type snapshotParent struct {
	store  *image.Store // the source's store; nil: the instance's
	key    string
	layers []v1.Hash
	host   string // the host image's key, for HostImage
	config []byte // the OCI config
}

// SnapshotOption configures Instance.Snapshot.
type SnapshotOption interface {
	applySnapshot(*snapshotOptions) error
}

type snapshotOptions struct {
	excludes  []string
	beforeAdd func(v1.Hash) error // a build on a network helper: see snapshot.Parent.BeforeAdd
}

type snapshotOption func(*snapshotOptions) error

func (f snapshotOption) applySnapshot(o *snapshotOptions) error { return f(o) }

// WithExcludes leaves paths out of a snapshot. A pattern with a slash
// matches whole sandbox paths ("/tmp/**", "/var/cache/*"), "**" standing
// for any number of path elements; a pattern without a slash matches any
// file or directory name ("*.log", "__pycache__"). An excluded directory
// goes with all it holds.
func WithExcludes(patterns ...string) SnapshotOption {
	return snapshotOption(func(o *snapshotOptions) error {
		o.excludes = append(o.excludes, patterns...)
		return nil
	})
}

// Snapshot captures what the sandbox changed (files written, removed,
// renamed, modes and owners changed) as a new snapshot of its filesystem.
// The sandbox keeps running; changes made while the snapshot is taken may
// or may not be in it. The cost grows with the bytes changed, not with the
// image. On the VM backend the guest sends its changes as a layer tar,
// which is checked as any untrusted layer is. A sandbox of a network
// helper (Remote.New) is snapshotted into that helper's store, where the
// snapshot stays: it starts sandboxes there (Remote.New) and nowhere else.
// It returns ErrNotRunning once the sandbox has stopped.
func (i *Instance) Snapshot(ctx context.Context, opts ...SnapshotOption) (*Snapshot, error) {
	var o snapshotOptions
	for _, opt := range opts {
		if err := opt.applySnapshot(&o); err != nil {
			return nil, fmt.Errorf("Snapshot: %w", err)
		}
	}
	if err := i.alive(); err != nil {
		return nil, err
	}
	if ni, ok := i.runner.(*helper.NetInstance); ok {
		return snapshotOnHelper(ctx, ni, o.excludes)
	}
	store, err := i.snapshotStore()
	if err != nil {
		return nil, err
	}
	if _, ok := i.runner.(localRunner); !ok && o.beforeAdd != nil {
		return nil, errors.New("Snapshot: a network helper's build step runs in a helper process, which cannot mark its layer before it enters the store")
	}
	p := i.parent
	parent := snapshot.Parent{Key: p.key, Layers: p.layers, Host: p.host, Config: p.config, BeforeAdd: o.beforeAdd}
	info, err := i.runner.Snapshot(ctx, store, o.excludes, parent, i.opts.logger)
	if err != nil {
		return nil, fmt.Errorf("Snapshot: %w", err)
	}
	return openSnapshotInfo(ctx, store, info)
}

// snapshotStore returns the store the instance's snapshots go into.
func (i *Instance) snapshotStore() (*image.Store, error) {
	if i.parent.store != nil {
		return i.parent.store, nil
	}
	o := i.opts.storeOptions
	return openStore(&o)
}

// openSnapshotInfo makes a Snapshot of a record, holding a lease on its
// layers.
func openSnapshotInfo(ctx context.Context, store *image.Store, info *snapshot.Info) (*Snapshot, error) {
	var cfg v1.ConfigFile
	if err := json.Unmarshal(info.Config, &cfg); err != nil {
		return nil, fmt.Errorf("snapshot %s: its config: %w", info.Key, err)
	}
	lease, err := store.Lease(ctx, info.Layers)
	if err != nil {
		return nil, err
	}
	return &Snapshot{info: info, store: store, cfg: &cfg, lease: lease}, nil
}

// OpenSnapshot reopens the snapshot of key (see CacheKey), in this process
// or any other that uses the same cache directory. It returns an error
// matching fs.ErrNotExist when the store has no such snapshot.
func OpenSnapshot(ctx context.Context, key string, opts ...StoreOption) (*Snapshot, error) {
	var o storeOptions
	for _, opt := range opts {
		if err := opt.(storeOption)(&o); err != nil {
			return nil, fmt.Errorf("OpenSnapshot: %w", err)
		}
	}
	store, err := openStore(&o)
	if err != nil {
		return nil, err
	}
	info, err := snapshot.Get(store, key)
	if err != nil {
		if errors.Is(err, snapshot.ErrNotFound) {
			return nil, &fs.PathError{Op: "open", Path: "snapshot " + key, Err: fs.ErrNotExist}
		}
		return nil, err
	}
	return openSnapshotInfo(ctx, store, info)
}

// CacheKey returns the snapshot's key: a hash of its parent's key and of
// the content of its changes (paths, types, modes, owners, contents; not
// times). Equal changes on the same parent give the same key.
func (s *Snapshot) CacheKey() string { return s.info.Key }

// Parent returns the key of what the snapshot was taken on: another
// snapshot's CacheKey, or the key of the image the sandbox started from.
func (s *Snapshot) Parent() string { return s.info.Parent }

// Config returns the run settings the snapshot carries: those of the
// image it descends from.
func (s *Snapshot) Config() ImageConfig {
	return (&Image{cfg: s.cfg}).Config()
}

// Close releases the snapshot; its record and layers stay in the store
// (Prune removes them once unreferenced... or use RemoveSnapshot). For a
// snapshot of a network helper's sandbox it does nothing: the snapshot
// stays in the helper's store. Close is safe to call more than once.
func (s *Snapshot) Close() error {
	var err error
	s.once.Do(func() {
		if s.lease != nil {
			err = s.lease.Release()
		}
	})
	return err
}

// rootfs makes a snapshot a Source.
func (s *Snapshot) rootfs(ctx context.Context, o *storeOptions) (*rootfsSpec, error) {
	if s.onHelper != nil {
		return nil, s.onHelper.errHere(s)
	}
	rs := &rootfsSpec{}
	if s.info.Host != "" {
		hs, err := HostImage().rootfs(ctx, o)
		if err != nil {
			return nil, err
		}
		rs.layers, rs.binds = hs.layers, hs.binds
	}
	for _, id := range s.info.Layers {
		if !s.store.HasLayer(id) {
			return nil, fmt.Errorf("snapshot %s: layer %s: %w", s.info.Key, id, fs.ErrNotExist)
		}
		rs.layers = append(rs.layers, s.store.LayerDir(id))
	}
	rs.config = runConfigOf(s.cfg)
	rs.parent = snapshotParent{store: s.store, key: s.info.Key, layers: slices.Clone(s.info.Layers), host: s.info.Host, config: s.info.Config}
	return rs, nil
}

// WriteOCILayout writes the snapshot as an OCI image into the layout in
// dir (see Image.WriteOCILayout). A snapshot of a HostImage sandbox cannot
// be exported: its base is the host itself.
func (s *Snapshot) WriteOCILayout(ctx context.Context, dir string, opts ...ExportOption) error {
	o, exp, err := s.export(ctx, opts)
	if err != nil {
		return err
	}
	defer exp.Close()
	return image.WriteLayout(dir, exp, o.tag)
}

// WriteDockerArchive writes the snapshot as a docker-archive at path, which
// docker load, podman load and skopeo read.
func (s *Snapshot) WriteDockerArchive(ctx context.Context, path string, opts ...ExportOption) error {
	o, exp, err := s.export(ctx, opts)
	if err != nil {
		return err
	}
	defer exp.Close()
	tag := o.tag
	if tag != "" {
		if _, err := name.NewTag(tag); err != nil {
			return fmt.Errorf("export: tag %q: %w", tag, err)
		}
	}
	return image.WriteArchive(path, exp, tag)
}

func (s *Snapshot) export(ctx context.Context, opts []ExportOption) (*exportOptions, *image.Exported, error) {
	if s.onHelper != nil {
		return nil, nil, s.onHelper.errHere(s)
	}
	if s.info.Host != "" {
		return nil, nil, fmt.Errorf("snapshot %s stands on the host image, which is not an image to export: %w", s.info.Key, errors.ErrUnsupported)
	}
	var o exportOptions
	for _, opt := range opts {
		if err := opt.applyExport(&o); err != nil {
			return nil, nil, fmt.Errorf("sandbox: export: %w", err)
		}
	}
	var dirs []string
	for _, id := range s.info.Layers {
		dirs = append(dirs, s.store.LayerDir(id))
	}
	exp, err := s.store.Export(ctx, dirs, s.info.Config)
	return &o, exp, err
}
