package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Images by content: what a network helper cannot pull (an image built,
// snapshotted or loaded on this machine) Remote.New sends it, layer by
// layer, as a registry push would: the helper says which layers its store
// lacks, only those travel (each a plain tar, checked against its diffID
// on arrival), and the image is then named by its config's digest.

// imageContent is a local image or snapshot as a network helper gets it.
type imageContent struct {
	key    string // names it among the sends of one Remote
	store  *image.Store
	layers []v1.Hash // the store's layers, lowest first
	config []byte    // the OCI config blob
}

// contentOf returns what a network helper needs to get src by content, or
// nil for a source that goes by reference (a helper's own image or
// snapshot, a local image pulled from a registry, Scratch) or that no
// helper can run (the caller says so). A snapshot of a HostImage sandbox is an error: its base
// is this host.
func contentOf(src Source) (*imageContent, error) {
	switch s := src.(type) {
	case *Image:
		if s.remote != nil || s.pulled || s.store == nil {
			return nil, nil
		}
		return &imageContent{key: "image " + s.digest.String(), store: s.store, layers: s.layers, config: s.raw}, nil
	case *Snapshot:
		if s.onHelper != nil {
			return nil, nil
		}
		if s.info.Host != "" {
			return nil, fmt.Errorf("snapshot %s stands on the host image (HostImage), which is this machine's, not an image a network helper could have: %w", s.info.Key, errors.ErrUnsupported)
		}
		return &imageContent{key: "snapshot " + s.info.Key, store: s.store, layers: s.info.Layers, config: s.info.Config}, nil
	}
	return nil, nil
}

// sendContent makes sure the helper holds c, sending what it lacks, and
// returns the helper's image of it. Concurrent sends of the same content
// through r share one transfer; each caller still returns when its own ctx
// ends, and one whose context outlives the transfer's (its first caller's)
// starts another.
func (r *Remote) sendContent(ctx context.Context, c *imageContent) (*Image, error) {
	for {
		ch := r.sends.DoChan(c.key, func() (any, error) {
			img, err := r.send(ctx, c)
			if err != nil && ctx.Err() != nil {
				return nil, &transferEnded{err}
			}
			return img, err
		})
		select {
		case res := <-ch:
			var ended *transferEnded
			if errors.As(res.Err, &ended) && ctx.Err() == nil {
				continue
			}
			if res.Err != nil {
				return nil, res.Err
			}
			return res.Val.(*Image), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// transferEnded is the error of a shared transfer whose context ended.
type transferEnded struct{ err error }

func (e *transferEnded) Error() string { return e.err.Error() }
func (e *transferEnded) Unwrap() error { return e.err }

// send is one transfer of sendContent.
func (r *Remote) send(ctx context.Context, c *imageContent) (*Image, error) {
	lease, err := c.store.Lease(ctx, c.layers)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	contents := make([]image.LayerContent, len(c.layers))
	diffIDs := make([]v1.Hash, len(c.layers))
	names := make([]string, len(c.layers))
	index := map[string]int{}
	for i, id := range c.layers {
		if contents[i], err = c.store.ContentID(ctx, id); err != nil {
			return nil, err
		}
		diffIDs[i], names[i] = contents[i].DiffID, contents[i].DiffID.String()
		index[names[i]] = i
	}
	config, err := image.WithDiffIDs(c.config, diffIDs)
	if err != nil {
		return nil, err
	}
	missing, err := r.nc.MissingLayers(ctx, names)
	if err != nil {
		return nil, err
	}
	sent := map[string]bool{}
	for _, m := range missing {
		i, ok := index[m]
		if !ok {
			return nil, fmt.Errorf("helper %s: it lacks layer %q, which was not asked about", r.Addr(), m)
		}
		if sent[m] {
			continue
		}
		sent[m] = true
		err := r.nc.PutLayer(ctx, m, contents[i].Size, func(w io.Writer) error {
			return c.store.WriteLayerTar(ctx, w, c.layers[i])
		})
		if err != nil {
			return nil, fmt.Errorf("sending layer %s: %w", m, err)
		}
	}
	a, err := r.nc.PutImage(ctx, config)
	if err != nil {
		return nil, err
	}
	if want := image.ConfigDigest(config).String(); a.Digest != want {
		return nil, fmt.Errorf("helper %s: it recorded the image as %s, not %s", r.Addr(), a.Digest, want)
	}
	return remoteImage(a, &ipc.PullReq{})
}
