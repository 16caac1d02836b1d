package sandbox

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// Builds a network helper runs for its clients (Remote.Build): the
// helper's package cannot start this package's sandboxes, so this package
// gives it its builder as it initialises; a cc-helper links it in.

func init() { helper.SetBuilder(buildOnHelper) }

// helperBuild is what a build a network helper runs for a client adds to
// Build's options (see helper.Build): FROM images come from the helper's
// pulls for the client, every new layer is marked before it enters the
// store, the step cache and cache mounts are the client's (scope), and
// each step's sandbox may have a memory limit.
type helperBuild struct {
	scope     string
	pull      func(ctx context.Context, ref string, platform v1.Platform) (v1.Hash, error)
	beforeAdd func(v1.Hash) error
	charge    func(kind, name string) error // see helper.Build.Charge
	memoryMB  uint64
	pidsMax   int64
}

// image pulls ref for the build's client and opens it in store.
func (h *helperBuild) image(ctx context.Context, store *image.Store, ref string, platform v1.Platform) (*Image, error) {
	d, err := h.pull(ctx, ref, platform)
	if err != nil {
		return nil, err
	}
	rec, err := store.Image(d)
	if err != nil {
		return nil, err
	}
	return newImage(store, rec, ref)
}

// buildOnHelper runs b with Build's machinery in the helper's store, one
// stage at a time, without network, and returns the snapshot it made.
func buildOnHelper(ctx context.Context, b *helper.Build) (*snapshot.Info, error) {
	o := buildOptions{
		storeOptions: storeOptions{cacheDir: b.Store.Root(), logger: b.Log},
		contextDir:   b.Context, args: b.Args, target: b.Target,
		noCache: b.NoCache, noCacheStages: b.NoCacheStages,
		secrets: map[string]dockerfile.Secret{}, parallelism: 1, sourceDateEpoch: b.Epoch,
		helper: &helperBuild{scope: b.Scope, pull: b.Pull, beforeAdd: b.BeforeAdd, charge: b.Charge, memoryMB: b.MemoryMB, pidsMax: b.PidsMax},
	}
	o.pull.platform = b.Platform
	for id, v := range b.Secrets {
		o.secrets[id] = dockerfile.Secret{Value: append([]byte{}, v...)} // never nil: nil names a file
	}
	if b.Progress != nil {
		o.progress = func(p BuildProgress) { b.Progress(dockerfile.Event(p)) }
	}
	snap, err := build(ctx, b.Dockerfile, &o)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	return snap.info, nil
}
