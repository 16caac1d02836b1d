package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/untrusted"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Generated are the files every sandbox gets from its backend
// (internal/hv/ns writes them into the writable layer); a snapshot leaves
// them out, as docker commit does.
var Generated = []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}

// recordKind is the kind of the store records of snapshots.
const recordKind = "snapshot"

// RecordKind is the kind of the store records of snapshots, named by
// their keys.
const RecordKind = recordKind

// Info describes a snapshot; it is the data of its record.
type Info struct {
	Key     string          `json:"key"`
	Parent  string          `json:"parent"`         // the parent's key
	Layers  []v1.Hash       `json:"layers"`         // every layer in the store, lowest first
	Host    string          `json:"host,omitempty"` // the host image's key, when the snapshot stands on it
	Config  json.RawMessage `json:"config"`         // the OCI config file
	Created time.Time       `json:"created"`
}

// Parent is what a snapshot is taken on top of.
type Parent struct {
	Key    string
	Layers []v1.Hash       // its layers in the store, lowest first
	Host   string          // the host image's key, or ""
	Config json.RawMessage // its OCI config file
	// BeforeAdd, when set, is called with the id of the snapshot's new
	// layer before the layer is added to the store; an error stops the
	// snapshot. A network helper marks the layer its client's there, so
	// that no other client ever sees it unmarked.
	BeforeAdd func(id v1.Hash) error `json:"-"`
}

// ErrNotFound matches errors for a key the store has no snapshot of.
var ErrNotFound = errors.New("no such snapshot")

// KeyOf derives a snapshot's key from its parent's key and its layer's id.
func KeyOf(parentKey string, layer v1.Hash) string {
	h := sha256.New()
	fmt.Fprintf(h, "cc-snapshot-v1\n%s\n%s\n", parentKey, layer)
	return hex.EncodeToString(h.Sum(nil))
}

// Get returns the snapshot of key, or an error matching ErrNotFound.
func Get(s *image.Store, key string) (*Info, error) {
	r, err := s.Record(recordKind, key)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w (%v)", key, ErrNotFound, err)
	}
	var info Info
	if err := json.Unmarshal(r.Data, &info); err != nil {
		return nil, fmt.Errorf("snapshot %s: corrupt record: %w", key, err)
	}
	for _, id := range info.Layers {
		if !s.HasLayer(id) {
			return nil, fmt.Errorf("snapshot %s: layer %s is gone: %w", key, id, ErrNotFound)
		}
	}
	return &info, nil
}

// put records info.
func put(ctx context.Context, s *image.Store, info *Info) error {
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return s.PutRecord(ctx, image.Record{Kind: recordKind, Name: info.Key, Layers: info.Layers, Data: data})
}

// Capture copies a sandbox's upper directory (its changes), open as an
// untrusted tree, into the store as a layer on top of parent, leaving out
// generated files and what excludes match, and records the snapshot. The
// caller freezes the sandbox where it can; where it cannot, what the
// sandbox changes during the copy may or may not be in the snapshot, but
// nothing outside upper ever is. A snapshot without changes has its
// parent's layers and a key of its own.
func Capture(ctx context.Context, s *image.Store, upper *untrusted.Dir, skip []string, excludes []string, parent Parent, log *slog.Logger) (*Info, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMatcher(append(append([]string(nil), skip...), excludes...))
	if err != nil {
		return nil, err
	}
	td, err := s.TempDir(ctx, "snapshot")
	if err != nil {
		return nil, err
	}
	defer td.Remove()
	dst, err := td.Mkdir("fs")
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	c := newCopier(m, log)
	id, n, err := c.copyTree(ctx, upper, dst)
	if err != nil {
		return nil, fmt.Errorf("snapshot: copying the changes: %w", err)
	}
	if n == 0 {
		return commit(ctx, s, "", v1.Hash{}, parent)
	}
	return commit(ctx, s, dst.Name(), id, parent)
}

// Commit adds dir (a layer in overlay format, made in a store TempDir) on
// top of parent and records the snapshot; the layer's id is computed from
// its content. It is how a build turns files it prepared into a step.
// The key follows the parent's key and the content only: when a snapshot
// of that key exists, it is returned with its own config, whatever
// parent.Config says (record a new config with WithConfig).
func Commit(ctx context.Context, s *image.Store, _ idmap.Map, dir string, parent Parent) (*Info, error) {
	id, n, err := HashTree(ctx, dir)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return commit(ctx, s, "", v1.Hash{}, parent)
	}
	return commit(ctx, s, dir, id, parent)
}

// WithConfig records a snapshot with parent's layers and a new config
// (steps that change only metadata); its key derives from the parent's key
// and the config.
func WithConfig(ctx context.Context, s *image.Store, parent Parent, config json.RawMessage) (*Info, error) {
	h := sha256.Sum256(config)
	info := &Info{
		Key:     KeyOf(parent.Key, v1.Hash{Algorithm: "config", Hex: hex.EncodeToString(h[:])}),
		Parent:  parent.Key,
		Layers:  slices.Clone(parent.Layers),
		Host:    parent.Host,
		Config:  config,
		Created: time.Now().UTC(),
	}
	if old, err := Get(s, info.Key); err == nil {
		return old, nil
	}
	return info, put(ctx, s, info)
}

// commit adds the layer (when dir is not "") and records the snapshot.
func commit(ctx context.Context, s *image.Store, dir string, id v1.Hash, parent Parent) (*Info, error) {
	release, err := s.Hold(ctx) // no Prune between the layer and its record
	if err != nil {
		return nil, err
	}
	defer release()
	layers := slices.Clone(parent.Layers)
	key := KeyOf(parent.Key, v1.Hash{Algorithm: "sha256", Hex: emptyLayer})
	if dir != "" {
		if parent.BeforeAdd != nil {
			if err := parent.BeforeAdd(id); err != nil {
				return nil, err
			}
		}
		if _, err := s.AddLayerDir(ctx, id, dir); err != nil {
			return nil, err
		}
		// The same content lower down (a change redone) is dropped there:
		// overlayfs takes each layer once, and the copy on top decides
		// every path of it anyway.
		layers = slices.DeleteFunc(layers, func(h v1.Hash) bool { return h == id })
		layers = append(layers, id)
		key = KeyOf(parent.Key, id)
	}
	if old, err := Get(s, key); err == nil {
		return old, nil // the same changes on the same parent: the same snapshot
	}
	info := &Info{Key: key, Parent: parent.Key, Layers: layers, Host: parent.Host, Config: parent.Config, Created: time.Now().UTC()}
	return info, put(ctx, s, info)
}

// emptyLayer stands for "no changes" in keys.
var emptyLayer = hex.EncodeToString(make([]byte, 32))
