package snapshot

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/ccsandbox/sandbox/internal/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Stack records the snapshot of the layer id, already in the store, on
// top of parent, as Commit would record it had it made the layer (a
// build's COPY --link reuses a layer it made on another base). It
// returns an error matching fs.ErrNotExist when the store lacks the
// layer.
func Stack(ctx context.Context, s *image.Store, id v1.Hash, parent Parent) (*Info, error) {
	release, err := s.Hold(ctx) // no Prune between the check and the record
	if err != nil {
		return nil, err
	}
	defer release()
	if !s.HasLayer(id) {
		return nil, fmt.Errorf("snapshot: layer %s: %w", id, fs.ErrNotExist)
	}
	layers := slices.DeleteFunc(slices.Clone(parent.Layers), func(h v1.Hash) bool { return h == id })
	layers = append(layers, id)
	key := KeyOf(parent.Key, id)
	if old, err := Get(s, key); err == nil {
		return old, nil
	}
	info := &Info{Key: key, Parent: parent.Key, Layers: layers, Host: parent.Host, Config: parent.Config, Created: time.Now().UTC()}
	return info, put(ctx, s, info)
}
