package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/idmap"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// storeVersion is the format of the store's layout; a store of another
// version is refused.
const storeVersion = 1

// Store is a content-addressed layer store under one root directory (see
// the package doc for its layout). Its methods are safe for concurrent use
// by goroutines and by processes sharing the root.
type Store struct {
	root   string
	ids    idmap.Map
	limits Limits
	log    *slog.Logger
}

// Options configure Open.
type Options struct {
	// IDs is the id mapping of the store's files; the zero Map means
	// idmap.Current().
	IDs idmap.Map
	// Limits bound each layer added from an archive.
	Limits Limits
	// Logger receives what the store skips, loses or cleans; nil discards.
	Logger *slog.Logger
}

// storeInfo is store.json.
type storeInfo struct {
	Version int    `json:"version"`
	Mode    string `json:"mode"` // "mapped" (root) or "single" (unprivileged)
}

// Open opens the store at root, creating it when missing. It fails with
// ErrStoreMode when the store was made in the other ownership mode (by
// root for an unprivileged user, or the other way round), since its files'
// owners would be wrong here.
func Open(root string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Store{root: abs, ids: opts.IDs, limits: opts.Limits.withDefaults(), log: opts.Logger}
	if s.ids.UIDs == nil {
		s.ids = idmap.Current()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	mode := "mapped"
	if s.ids.Single() {
		mode = "single"
	}
	if err := prepareRoot(abs); err != nil {
		return nil, err
	}
	info := s.path("store.json")
	b, err := os.ReadFile(info)
	if errors.Is(err, fs.ErrNotExist) {
		for _, d := range []string{"layers/sha256", "locks", "records", "leases", "tmp"} {
			if err := os.MkdirAll(s.path(d), 0o700); err != nil {
				return nil, fmt.Errorf("creating layer store: %w", err)
			}
		}
		b, _ = json.Marshal(storeInfo{Version: storeVersion, Mode: mode})
		if err := writeFileAtomic(info, b); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("creating layer store: %w", err)
		}
		b, err = os.ReadFile(info)
	}
	if err != nil {
		return nil, fmt.Errorf("opening layer store: %w", err)
	}
	if err := s.makePrivate(); err != nil {
		return nil, err
	}
	var si storeInfo
	if err := json.Unmarshal(b, &si); err != nil {
		return nil, fmt.Errorf("opening layer store: %s: %w", info, err)
	}
	if si.Version != storeVersion {
		return nil, fmt.Errorf("opening layer store %s: format version %d, this SDK reads %d", abs, si.Version, storeVersion)
	}
	if si.Mode != mode {
		return nil, fmt.Errorf("opening layer store %s: it holds files for the %q ownership mode and this process needs %q (use another cache directory): %w",
			abs, si.Mode, mode, ErrStoreMode)
	}
	return s, nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

// IDs returns the id mapping of the store's files.
func (s *Store) IDs() idmap.Map { return s.ids }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// layerPath is the directory of a complete layer: fs/ and layer.json.
func (s *Store) layerPath(id v1.Hash) string {
	return s.path("layers", id.Algorithm, id.Hex)
}

// LayerDir returns the directory of the layer id in overlay format, for
// use as an overlay lower directory. It is a path only: the layer exists
// when HasLayer says so, and then never changes until Prune removes it.
func (s *Store) LayerDir(id v1.Hash) string {
	return filepath.Join(s.layerPath(id), "fs")
}

// HasLayer reports whether the layer id is complete in the store.
func (s *Store) HasLayer(id v1.Hash) bool {
	if !validHash(id) {
		return false
	}
	_, err := os.Lstat(s.path("layers", id.Algorithm, id.Hex, "layer.json"))
	return err == nil
}

// LayerInfo is the metadata kept beside a layer (layer.json).
type LayerInfo struct {
	ID      v1.Hash `json:"id"`
	Size    int64   `json:"size"`    // bytes of regular file data
	Entries int     `json:"entries"` // archive entries, or files for a directory
	Source  string  `json:"source"`  // "archive" or "directory"
	Mode    string  `json:"mode"`    // ownership mode: "mapped" or "single"
}

// Layer returns the metadata of a complete layer; an error matching
// fs.ErrNotExist when it is not in the store.
func (s *Store) Layer(id v1.Hash) (LayerInfo, error) {
	if !validHash(id) {
		return LayerInfo{}, fmt.Errorf("layer %q: %w", id, fs.ErrNotExist)
	}
	b, err := os.ReadFile(filepath.Join(s.layerPath(id), "layer.json"))
	if err != nil {
		return LayerInfo{}, err
	}
	var li LayerInfo
	if err := json.Unmarshal(b, &li); err != nil {
		return LayerInfo{}, fmt.Errorf("layer %s: %w", id, err)
	}
	return li, nil
}

// Layers returns the ids of every complete layer.
func (s *Store) Layers() ([]v1.Hash, error) {
	var ids []v1.Hash
	algs, err := os.ReadDir(s.path("layers"))
	if err != nil {
		return nil, err
	}
	for _, a := range algs {
		es, err := os.ReadDir(s.path("layers", a.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			h := v1.Hash{Algorithm: a.Name(), Hex: e.Name()}
			if validHash(h) {
				ids = append(ids, h)
			}
		}
	}
	return ids, nil
}

// validHash reports whether h can name a layer: sha256 and 64 lowercase
// hex digits, so it is safe in a path.
func validHash(h v1.Hash) bool {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return false
	}
	for _, c := range h.Hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// shared holds the store lock shared: any number of writers at once, no
// Prune meanwhile. Nested holds in one process are fine.
func (s *Store) shared(ctx context.Context) (*fileLock, error) {
	return lockFile(ctx, s.path("store.lock"), false)
}

// Hold keeps Prune away until release is called, so that layers a caller
// adds and the record it then writes cannot be pruned in between. Methods
// that write take the same hold themselves; callers that add layers and
// then a record that lists them hold it around both.
func (s *Store) Hold(ctx context.Context) (release func(), err error) {
	l, err := s.shared(ctx)
	if err != nil {
		return nil, fmt.Errorf("locking layer store: %w", err)
	}
	return l.unlock, nil
}

// randomName returns a fresh name for temporary entries.
func randomName() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory: written, fsynced, renamed, and the directory fsynced.
func writeFileAtomic(path string, data []byte) error {
	return fsutil.WriteAtomic(path, 0o600, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// syncDir fsyncs a directory, so that renames into it are durable.
func syncDir(path string) error { return fsutil.SyncDir(path) }
