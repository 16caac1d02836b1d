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

// helperImage pulls ref for the client of the helper's build b and opens
// it in store.
func helperImage(ctx context.Context, b *helper.Build, store *image.Store, ref string, platform v1.Platform) (*Image, error) {
	d, err := b.Pull(ctx, ref, platform)
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
		secrets: map[string]dockerfile.Secret{}, parallelism: 1, sourceDateEpoch: b.Epoch, helper: b,
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
