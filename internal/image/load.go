package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Annotations that name an image in an OCI layout's index.
const (
	annotationRefName   = "org.opencontainers.image.ref.name"
	annotationContainer = "io.containerd.image.name"
)

// LoadOptions choose an image in a layout or an archive. With neither Tag
// nor Digest, the source must hold one image, or one per platform.
type LoadOptions struct {
	Platform v1.Platform // zero: HostPlatform()
	Tag      string      // the image's name: the layout's ref.name annotation, or the archive's RepoTag
	Digest   v1.Hash     // the layout's manifest (or index) digest, or the archive image's config digest
}

// Loaded is what LoadLayout and LoadArchive return.
type Loaded struct {
	Image     ImageRecord
	Reference string // the name the source gives the image, if any
}

func (o LoadOptions) platform() v1.Platform {
	if o.Platform.OS == "" {
		return HostPlatform()
	}
	return o.Platform
}

// LoadLayout imports an image from the OCI layout in dir. Errors: dir is
// not a layout; no image or several match the options (the error lists
// the candidates); ErrPlatform; and those of AddLayer.
func (s *Store) LoadLayout(ctx context.Context, dir string, o LoadOptions) (Loaded, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return Loaded{}, fmt.Errorf("loading OCI layout: %w", err)
	}
	if err := checkLayoutFile(filepath.Join(dir, "index.json")); err != nil {
		return Loaded{}, fmt.Errorf("loading OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return Loaded{}, fmt.Errorf("loading OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return Loaded{}, fmt.Errorf("loading OCI layout %s: %w", dir, err)
	}
	what := "OCI layout " + dir
	d, err := chooseDescriptor(im, o, what)
	if err != nil {
		return Loaded{}, err
	}
	ref := d.Annotations[annotationRefName]
	blob := func(h v1.Hash) string { return filepath.Join(dir, "blobs", h.Algorithm, h.Hex) }
	if d.MediaType.IsIndex() {
		if err := checkLayoutFile(blob(d.Digest)); err != nil {
			return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
		}
		sub, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
		}
		sim, err := sub.IndexManifest()
		if err != nil {
			return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
		}
		if d, err = pickManifest(sim, o.platform(), what); err != nil {
			return Loaded{}, err
		}
		if !d.MediaType.IsImage() {
			return Loaded{}, fmt.Errorf("loading %s: nested indexes are not supported", what)
		}
	}
	if err := checkLayoutFile(blob(d.Digest)); err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	img, err := p.Image(d.Digest)
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	if got, err := img.Digest(); err != nil || got != d.Digest {
		return Loaded{}, fmt.Errorf("loading %s: manifest %s does not hash to its name (%v): %w", what, d.Digest, err, ErrDigestMismatch)
	}
	m, err := img.Manifest()
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	raw, err := rawConfig(img, m, func() (io.ReadCloser, error) { return p.Blob(m.Config.Digest) })
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: config: %w", what, err)
	}
	if err := checkConfig(raw, m.Config.Digest); err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	if err := checkPlatform(cfg, o.platform(), what); err != nil {
		return Loaded{}, err
	}
	if rec, err := s.Image(d.Digest); err == nil {
		return Loaded{Image: rec, Reference: ref}, nil
	}
	blobs := make([]blobSource, len(m.Layers))
	for i, l := range m.Layers {
		blobs[i] = blobSource{digest: l.Digest, size: l.Size, open: func() (io.ReadCloser, error) { return p.Blob(l.Digest) }}
	}
	rec, err := s.importImage(ctx, d.Digest, raw, blobs, importOptions{jobs: 2})
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	return Loaded{Image: rec, Reference: ref}, nil
}

// chooseDescriptor picks the entry of a layout's index the options name.
func chooseDescriptor(im *v1.IndexManifest, o LoadOptions, what string) (v1.Descriptor, error) {
	var cands []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case o.Tag != "" && d.Annotations[annotationRefName] != o.Tag && d.Annotations[annotationContainer] != o.Tag:
		case o.Digest != (v1.Hash{}) && d.Digest != o.Digest:
		default:
			cands = append(cands, d)
		}
	}
	if len(cands) == 1 {
		return cands[0], nil
	}
	if len(cands) > 1 && !slices.ContainsFunc(cands, func(d v1.Descriptor) bool { return d.Platform == nil }) {
		return pickManifest(&v1.IndexManifest{Manifests: cands}, o.platform(), what)
	}
	var names []string
	for _, d := range im.Manifests {
		n := d.Digest.String()
		if t := d.Annotations[annotationRefName]; t != "" {
			n = t + " (" + n + ")"
		}
		names = append(names, n)
	}
	switch {
	case len(im.Manifests) == 0:
		return v1.Descriptor{}, fmt.Errorf("%s holds no image: %w", what, fs.ErrNotExist)
	case len(cands) == 0:
		return v1.Descriptor{}, fmt.Errorf("%s has no image %s; it has %s: %w", what, wanted(o), strings.Join(names, ", "), fs.ErrNotExist)
	}
	return v1.Descriptor{}, fmt.Errorf("%s holds several images (%s): choose one by tag or digest", what, strings.Join(names, ", "))
}

func wanted(o LoadOptions) string {
	var w []string
	if o.Tag != "" {
		w = append(w, "tagged "+o.Tag)
	}
	if o.Digest != (v1.Hash{}) {
		w = append(w, "with digest "+o.Digest.String())
	}
	return strings.Join(w, " and ")
}

// LoadArchive imports an image from a docker archive (docker save's
// format). Errors: path is not such an archive; no image or several match
// the options; ErrPlatform; and those of AddLayer.
func (s *Store) LoadArchive(ctx context.Context, path string, o LoadOptions) (Loaded, error) {
	what := "docker archive " + path
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	entries, err := archiveEntries(path)
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	if err := entries.checkSmall("manifest.json"); err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	var cands []tarball.Descriptor
	for _, d := range m {
		switch {
		case o.Tag != "" && !hasTag(d.RepoTags, o.Tag):
		case o.Digest != (v1.Hash{}) && !strings.Contains(d.Config, o.Digest.Hex):
		default:
			cands = append(cands, d)
		}
	}
	var names []string
	for _, d := range m {
		names = append(names, strings.Join(append([]string{d.Config}, d.RepoTags...), " "))
	}
	switch {
	case len(m) == 0:
		return Loaded{}, fmt.Errorf("%s holds no image: %w", what, fs.ErrNotExist)
	case len(cands) == 0:
		return Loaded{}, fmt.Errorf("%s has no image %s; it has %s: %w", what, wanted(o), strings.Join(names, ", "), fs.ErrNotExist)
	case len(cands) > 1:
		return Loaded{}, fmt.Errorf("%s holds several images (%s): choose one by tag or digest", what, strings.Join(names, "; "))
	}
	var tag *name.Tag
	ref := ""
	if len(cands[0].RepoTags) > 0 {
		t, err := name.NewTag(cands[0].RepoTags[0])
		if err != nil {
			return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
		}
		tag, ref = &t, cands[0].RepoTags[0]
	} else if len(m) > 1 {
		return Loaded{}, fmt.Errorf("loading %s: the image %s has no tag to select it by", what, cands[0].Config)
	}
	if err := entries.checkSmall(cands[0].Config); err != nil {
		return Loaded{}, fmt.Errorf("loading %s: image config: %w", what, err)
	}
	// The archive's reader finds the image again by its tag: that must
	// name the image checked here.
	if tag != nil {
		for _, d := range m {
			if d.Config != cands[0].Config && hasTag(d.RepoTags, ref) {
				return Loaded{}, fmt.Errorf("loading %s: several images carry the tag %s", what, ref)
			}
		}
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: config: %w", what, err)
	}
	digest := sha256Of(raw)
	if o.Digest != (v1.Hash{}) && digest != o.Digest {
		return Loaded{}, fmt.Errorf("loading %s: config is %s, want %s: %w", what, digest, o.Digest, ErrDigestMismatch)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	if err := checkArchiveConfig(raw, cfg); err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	if err := checkPlatform(cfg, o.platform(), what); err != nil {
		return Loaded{}, err
	}
	if rec, err := s.Image(digest); err == nil {
		return Loaded{Image: rec, Reference: ref}, nil
	}
	blobs := make([]blobSource, len(cfg.RootFS.DiffIDs))
	for i, id := range cfg.RootFS.DiffIDs {
		blobs[i] = blobSource{size: -1, open: func() (io.ReadCloser, error) {
			l, err := img.LayerByDiffID(id)
			if err != nil {
				return nil, err
			}
			return l.Uncompressed()
		}}
	}
	rec, err := s.importImage(ctx, digest, raw, blobs, importOptions{jobs: 2})
	if err != nil {
		return Loaded{}, fmt.Errorf("loading %s: %w", what, err)
	}
	return Loaded{Image: rec, Reference: ref}, nil
}

// hasTag reports whether tags holds want, compared as references.
func hasTag(tags []string, want string) bool {
	w, err := name.NewTag(want)
	for _, t := range tags {
		if t == want {
			return true
		}
		if tt, err2 := name.NewTag(t); err == nil && err2 == nil && tt.Name() == w.Name() {
			return true
		}
	}
	return false
}

// checkArchiveConfig refuses a docker archive's config that is not an
// image's config. Such an image is recorded under its config's digest,
// where pulled and laid-out images are under their manifests': a config
// whose bytes were another image's manifest would take that image's
// record (and its place in build and snapshot keys). An image config
// has a rootfs of type "layers" and none of a manifest's or an index's
// own fields, matched as manifests are decoded: by encoding/json, which
// takes "SchemaVersion" or "LAYERS" for schemaVersion and layers.
func checkArchiveConfig(raw []byte, cfg *v1.ConfigFile) error {
	var fields struct {
		SchemaVersion json.RawMessage `json:"schemaVersion"`
		Layers        json.RawMessage `json:"layers"`
		Manifests     json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("parsing image config: %w", err)
	}
	for _, f := range []struct {
		name  string
		value json.RawMessage
	}{{"schemaVersion", fields.SchemaVersion}, {"layers", fields.Layers}, {"manifests", fields.Manifests}} {
		if f.value != nil {
			return fmt.Errorf("its config is a manifest or an index (it has %s), not an image config", f.name)
		}
	}
	if cfg.RootFS.Type != "layers" {
		return fmt.Errorf("its config says rootfs type %q, not \"layers\": not an image config", cfg.RootFS.Type)
	}
	return nil
}

// checkLayoutFile refuses a layout's index.json or manifest, which its
// reader reads whole, unless it is a regular file (not a link: to
// /dev/zero it would never end) of at most MaxConfigSize.
func checkLayoutFile(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file: %w", path, ErrInvalidEntry)
	case fi.Size() > MaxConfigSize:
		return fmt.Errorf("%s of %d bytes, more than %d: %w", path, fi.Size(), MaxConfigSize, ErrTooLarge)
	}
	return nil
}

// archiveEntry is what a tar archive holds under one cleaned name.
type archiveEntry struct {
	size  int64 // of the first
	count int   // entries of that name
	link  bool  // the first is a symlink or hard link
}

// archiveIndex describes a tar archive's entries by cleaned name.
type archiveIndex map[string]archiveEntry

// archiveEntries reads the headers of the tar archive at path (skipping
// the entries' data, the file being seekable): what a docker archive's
// manifest.json and configs would cost before they are read whole.
func archiveEntries(path string) (archiveIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx := archiveIndex{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return idx, nil
		}
		if err != nil {
			return nil, err
		}
		name := filepath.Clean(h.Name)
		e, seen := idx[name]
		if !seen {
			e = archiveEntry{size: h.Size, link: h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink}
		}
		e.count++
		idx[name] = e
	}
}

// checkSmall refuses the entry name, read whole when the image is loaded,
// unless it is one regular file of at most MaxConfigSize: several entries
// of one name, or a link (which the reader would follow elsewhere), could
// make it read another than the one sized here.
func (idx archiveIndex) checkSmall(name string) error {
	e, ok := idx[filepath.Clean(name)]
	switch {
	case !ok:
		return nil // the reader says it is missing
	case e.count > 1:
		return fmt.Errorf("%s: %d entries of that name: %w", name, e.count, ErrInvalidEntry)
	case e.link:
		return fmt.Errorf("%s is a link: %w", name, ErrInvalidEntry)
	case e.size > MaxConfigSize:
		return fmt.Errorf("%s of %d bytes, more than %d: %w", name, e.size, MaxConfigSize, ErrTooLarge)
	}
	return nil
}
