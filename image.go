package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is an OCI image whose layers are unpacked in the layer store, as
// Pull, LoadOCILayout, LoadDockerArchive and Scratch return it. It is a
// source for New, and can be written back out. An Image is immutable and
// safe for concurrent use.
type Image struct {
	store  *image.Store // nil for Scratch
	digest v1.Hash
	ref    string
	raw    []byte         // the config blob
	cfg    *v1.ConfigFile // parsed raw
	layers []v1.Hash      // diffIDs, lowest first
	// remote says how a network helper gets the image (Remote.Pull,
	// Fleet.Pull: its reference; an image sent by content: none, it is
	// there by digest); its layers are in the helpers' stores, not in
	// store.
	remote *ipc.PullReq
	// pulled: Pull got it from a registry, where a network helper can
	// pull it too; any other local image goes to a helper by content.
	pulled bool
}

// ImageConfig is what an image's config says about running it.
type ImageConfig struct {
	Env          []string          // "KEY=value" pairs
	Cmd          []string          // default arguments
	Entrypoint   []string          // the program that runs Cmd, if any
	WorkingDir   string            // "" means "/"
	User         string            // "user", "uid", "user:group" or "uid:gid"; "" means root
	ExposedPorts []string          // "port/proto", sorted
	Labels       map[string]string // metadata
	StopSignal   string            // "" means SIGTERM
	Architecture string            // GOARCH-style, "amd64"
	OS           string            // "linux"
}

// Progress tells how far one layer of a pull has come; see WithProgress.
type Progress struct {
	Layer    string // the digest of the layer's blob, "sha256:..."
	Index    int    // the layer's position, 0 being the lowest
	Count    int    // how many layers the image has
	Done     int64  // bytes fetched so far
	Total    int64  // the blob's size, -1 when unknown
	Cached   bool   // the layer was in the store already
	Complete bool   // the layer is in the store now
}

// Pull gets the image named by ref ("busybox", "ghcr.io/org/app:1.2",
// "registry.local:5000/x@sha256:...") from its registry into the layer
// store and returns it; see WithPullPolicy for when it asks the registry.
// Credentials come from the Docker config and its credential helpers
// unless WithAuth or WithKeychain says otherwise. From an index it takes
// the host's platform (or WithPlatform's). Every layer is checked against
// its digests before it is used.
//
// It returns an error for a malformed reference or option, a registry
// error (unauthorized, not found), an image for another platform than the
// one wanted (also when an index offers none), a plain-HTTP registry off
// loopback without WithPlainHTTP, content that does not match its digest,
// a hostile layer (an *fs.PathError naming the entry), an error matching
// fs.ErrNotExist under PullNever when the store lacks the image, or the
// context's error.
func Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	var o pullOptions
	for _, opt := range opts {
		if err := opt.applyPull(&o); err != nil {
			return nil, fmt.Errorf("sandbox.Pull: %w", err)
		}
	}
	s, err := openStore(&o.storeOptions)
	if err != nil {
		return nil, err
	}
	po := image.PullOptions{
		Platform:  o.platform,
		Policy:    image.PullPolicy(o.policy),
		Keychain:  o.keychain,
		Auth:      o.auth,
		Transport: o.transport,
		PlainHTTP: o.plainHTTP,
	}
	if o.progress != nil {
		po.Progress = func(p image.LayerProgress) { o.progress(publicProgress(p)) }
	}
	p, err := s.Pull(ctx, ref, po)
	if err != nil {
		return nil, err
	}
	img, err := newImage(s, p.Image, p.Reference)
	if err != nil {
		return nil, err
	}
	img.pulled = true
	return img, nil
}

// LoadOCILayout imports an image from the OCI image layout in dir (as
// skopeo copy oci:DIR or crane save writes it) into the layer store and
// returns it. When the layout holds several images, WithTag or WithDigest
// chooses one; an index of platforms is resolved with WithPlatform (the
// host's by default). It returns an error when dir is no layout, when no
// image or more than one matches (the error lists what there is), for an
// image of another platform, for content that does not match its digest,
// or for a hostile layer (an *fs.PathError naming the entry).
func LoadOCILayout(ctx context.Context, dir string, opts ...LoadOption) (*Image, error) {
	o, s, err := loadSetup(opts)
	if err != nil {
		return nil, err
	}
	l, err := s.LoadLayout(ctx, dir, image.LoadOptions{Platform: o.platform, Tag: o.tag, Digest: o.digest})
	if err != nil {
		return nil, err
	}
	return newImage(s, l.Image, l.Reference)
}

// LoadDockerArchive imports an image from a docker archive (the tar file
// docker save and podman save write) into the layer store and returns it.
// When the archive holds several images, WithTag chooses one by its
// RepoTag, or WithDigest by its config digest. Its errors are those of
// LoadOCILayout. The Digest of an image loaded this way is its config's
// digest, since a docker archive has no manifest.
func LoadDockerArchive(ctx context.Context, path string, opts ...LoadOption) (*Image, error) {
	o, s, err := loadSetup(opts)
	if err != nil {
		return nil, err
	}
	l, err := s.LoadArchive(ctx, path, image.LoadOptions{Platform: o.platform, Tag: o.tag, Digest: o.digest})
	if err != nil {
		return nil, err
	}
	return newImage(s, l.Image, l.Reference)
}

func loadSetup(opts []LoadOption) (*loadOptions, *image.Store, error) {
	var o loadOptions
	for _, opt := range opts {
		if err := opt.applyLoad(&o); err != nil {
			return nil, nil, fmt.Errorf("sandbox: load: %w", err)
		}
	}
	s, err := openStore(&o.storeOptions)
	return &o, s, err
}

// openStore opens the layer store the options name.
func openStore(o *storeOptions) (*image.Store, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	return image.Open(o.cacheDir, image.Options{Logger: o.logger})
}

// Scratch returns the empty image: no layers, no command, for the host's
// platform. A sandbox made from it has an empty root to write into.
func Scratch() *Image {
	raw := image.ScratchConfig()
	cfg, _ := v1.ParseConfigFile(bytes.NewReader(raw))
	return &Image{digest: image.ConfigDigest(raw), ref: "scratch", raw: raw, cfg: cfg}
}

func newImage(s *image.Store, rec image.ImageRecord, ref string) (*Image, error) {
	cfg, err := rec.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", rec.Digest, err)
	}
	return &Image{store: s, digest: rec.Digest, ref: ref, raw: rec.Config, cfg: cfg, layers: rec.Layers}, nil
}

// Digest returns the image's digest, "sha256:...": its manifest's for a
// pulled image or one from an OCI layout; its config's for one from a
// docker archive or Scratch, which have no manifest.
func (i *Image) Digest() string { return i.digest.String() }

// Reference returns the name the image came by: the fully qualified
// reference of a pull ("index.docker.io/library/busybox:latest"), the tag
// a layout or archive gives it, "scratch", or "" when the source names it
// not.
func (i *Image) Reference() string { return i.ref }

// Config returns what the image's config says about running it. The
// result is a copy.
func (i *Image) Config() ImageConfig {
	c := i.cfg.Config
	ic := ImageConfig{
		Env:          slices.Clone(c.Env),
		Cmd:          slices.Clone(c.Cmd),
		Entrypoint:   slices.Clone(c.Entrypoint),
		WorkingDir:   c.WorkingDir,
		User:         c.User,
		StopSignal:   c.StopSignal,
		Architecture: i.cfg.Architecture,
		OS:           i.cfg.OS,
	}
	for p := range c.ExposedPorts {
		ic.ExposedPorts = append(ic.ExposedPorts, p)
	}
	slices.Sort(ic.ExposedPorts)
	if c.Labels != nil {
		ic.Labels = make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			ic.Labels[k] = v
		}
	}
	return ic
}

// rootfs makes the image a Source for New: its layer directories in
// overlay format, lowest first (none for Scratch), and its run settings.
// The layers live in the store the image came into, whatever store o
// names. It returns an error matching fs.ErrNotExist when a layer was
// pruned since (after RemoveImage).
func (i *Image) rootfs(ctx context.Context, o *storeOptions) (*rootfsSpec, error) {
	if i.remote != nil {
		return nil, errRemoteImage(i)
	}
	layers, cfg := i.layersAndConfig()
	for k, id := range i.layers {
		if !i.store.HasLayer(id) {
			return nil, fmt.Errorf("image %s: layer %s: %w", i.digest, id, &fs.PathError{Op: "open", Path: layers[k], Err: fs.ErrNotExist})
		}
	}
	key := "image-" + i.digest.Hex
	return &rootfsSpec{layers: layers, config: runConfigOf(cfg),
		parent: snapshotParent{store: i.store, key: key, layers: slices.Clone(i.layers), config: i.raw}}, nil
}

// layersAndConfig returns what a sandbox is made of: the image's layer
// directories in overlay format, lowest first (none for Scratch), and a
// copy of its OCI config.
func (i *Image) layersAndConfig() (layers []string, cfg *v1.ConfigFile) {
	for _, id := range i.layers {
		layers = append(layers, i.store.LayerDir(id))
	}
	return layers, i.cfg.DeepCopy()
}

// layerStore returns the store the image's layers live in; nil for
// Scratch.
func (i *Image) layerStore() *image.Store { return i.store }

// WriteOCILayout writes the image into the OCI image layout in dir,
// creating it when dir is missing or empty and adding to it when it is a
// layout already; WithTag names the image there. The layers are re-made
// from the store, so the written image's digest differs from the source's
// when the source's tar streams were laid out differently. It returns an
// error when dir holds something else, or for an I/O error.
func (i *Image) WriteOCILayout(ctx context.Context, dir string, opts ...ExportOption) error {
	o, exp, err := i.export(ctx, opts)
	if err != nil {
		return err
	}
	defer exp.Close()
	return image.WriteLayout(dir, exp, o.tag)
}

// WriteDockerArchive writes the image to the file path as a docker
// archive that docker load, podman load and skopeo read; WithTag names
// the image there (its RepoTag), by default its Reference when that is a
// tag. The file appears only when complete. Digests are re-made as for
// WriteOCILayout. It returns an error for a malformed tag or an I/O error.
func (i *Image) WriteDockerArchive(ctx context.Context, path string, opts ...ExportOption) error {
	o, exp, err := i.export(ctx, opts)
	if err != nil {
		return err
	}
	defer exp.Close()
	tag := o.tag
	if _, err := name.NewTag(i.ref, name.StrictValidation); tag == "" && err == nil {
		tag = i.ref
	}
	return image.WriteArchive(path, exp, tag)
}

func (i *Image) export(ctx context.Context, opts []ExportOption) (*exportOptions, *image.Exported, error) {
	var o exportOptions
	for _, opt := range opts {
		if err := opt.applyExport(&o); err != nil {
			return nil, nil, fmt.Errorf("sandbox: export: %w", err)
		}
	}
	if i.remote != nil {
		return nil, nil, errRemoteImage(i)
	}
	layers, _ := i.layersAndConfig()
	exp, err := i.store.Export(ctx, layers, i.raw)
	if err != nil {
		return nil, nil, err
	}
	return &o, exp, nil
}

// ProgressBar returns a WithProgress function that draws a pull's
// progress on w (a terminal) as one line redrawn in place, ended with a
// newline when every layer is in the store.
func ProgressBar(w io.Writer) func(Progress) {
	b := image.NewProgressBar(w)
	return func(p Progress) {
		h, _ := v1.NewHash(p.Layer)
		b.Update(image.LayerProgress{Index: p.Index, Count: p.Count, Digest: h, Done: p.Done, Total: p.Total, Cached: p.Cached, Complete: p.Complete})
	}
}

func publicProgress(p image.LayerProgress) Progress {
	return Progress{Layer: p.Digest.String(), Index: p.Index, Count: p.Count, Done: p.Done, Total: p.Total, Cached: p.Cached, Complete: p.Complete}
}
