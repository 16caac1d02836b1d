package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BuildProgress is one event of a build, as WithBuildProgress reports
// them: a step starting (Done false, Output ""), a line of its output,
// or its end (Done true, Cached telling whether it ran). Steps are those
// that make a filesystem: FROM, RUN, COPY, ADD, and WORKDIR; instructions
// that only change the config (ENV, LABEL, CMD, ...) are not reported.
type BuildProgress struct {
	Step        int    // the step's number in its stage, from 1; 0 for a build-wide warning
	Total       int    // how many such steps the stage has
	Stage       string // the stage's name, or "stage-N" for the Nth unnamed one
	Instruction string // the instruction, as run
	Cached      bool   // at the end: the result came from the cache and nothing ran
	Done        bool   // the step has ended
	Output      string // a line the step printed (or, with Step 0, a warning), without its newline
}

// Build runs the Dockerfile src, as `docker build` does, and
// returns the image it makes as a Snapshot: a Source for New, with the
// image config the Dockerfile leaves (Cmd, Entrypoint, Env, WorkingDir,
// User, ExposedPorts, Labels, StopSignal, Volumes, Healthcheck, OnBuild,
// history), ready to export with WriteOCILayout or WriteDockerArchive.
// Close it when done.
//
// Each RUN runs in a sandbox of this SDK, started from the previous
// step's snapshot (consecutive RUNs share one sandbox when that gives the
// same result), without network unless WithBuildNetwork gives it, with
// the mounts RUN --mount asks for (cache, bind, tmpfs, secret, ssh);
// COPY and ADD write their layer directly; instructions that change only
// the config start nothing. Stages that do not need each other's results
// run at the same time (WithBuildParallelism). Every step is cached in
// the layer store under a key made of the previous step's key, the
// instruction after expansion, the content and modes of the files a
// COPY, ADD or bind mount reads, and the build arguments a RUN sees
// (never a secret or a cache mount's content): a build with nothing
// changed runs nothing, and a changed file re-runs only the steps from
// the first one that reads it. FROM is keyed by the image's digest,
// never by its name.
//
// FROM and COPY --from name earlier stages, images given with
// WithBuildSource (HostImage() among them), "scratch", or images to pull
// (see WithPullOptions). ADD fetches http(s) URLs through the build's
// dialer when the build has the network. CheckDockerfile lists, without
// building, what this builder refuses. Errors in the Dockerfile name its
// line; a failing RUN's error ends with its last output and says when the
// step had no network.
func Build(ctx context.Context, src []byte, opts ...BuildOption) (*Snapshot, error) {
	var o buildOptions
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("sandbox.Build: nil option")
		}
		if err := opt.applyBuild(&o); err != nil {
			return nil, fmt.Errorf("sandbox.Build: %w", err)
		}
	}
	return build(ctx, src, &o)
}

// build is Build once its options are applied.
func build(ctx context.Context, src []byte, o *buildOptions) (*Snapshot, error) {
	store, err := openStore(&o.storeOptions)
	if err != nil {
		return nil, err
	}
	e, err := newBuildExec(o, store)
	if err != nil {
		return nil, fmt.Errorf("sandbox.Build: %w", err)
	}
	defer e.close()
	epoch, err := o.epoch()
	if err != nil {
		return nil, fmt.Errorf("sandbox.Build: %w", err)
	}
	bo := o.internal()
	bo.SourceDateEpoch = epoch
	if o.progress != nil {
		bo.Progress = func(ev dockerfile.Event) { o.progress(BuildProgress(ev)) }
	}
	if o.helper != nil {
		bo.NoNetwork = "a build on a network helper has none"
	}
	ref, err := dockerfile.Build(ctx, src, e, bo)
	if err != nil {
		return nil, fmt.Errorf("sandbox.Build: %w", err)
	}
	r := ref.(*buildRef)
	info := r.info
	// A base image as it is, or a snapshot whose stack repeats a layer
	// (see infoRef), is recorded as a snapshot of its own that New can
	// start, reopened by its key.
	if info == nil || !slices.Equal(info.Layers, recordedLayers(store, info.Key)) {
		if info, err = snapshot.WithConfig(ctx, store, e.parent(r), r.config); err != nil {
			return nil, fmt.Errorf("sandbox.Build: %w", err)
		}
		if err := e.chargeSnapshot(info); err != nil {
			return nil, fmt.Errorf("sandbox.Build: %w", err)
		}
	}
	return openSnapshotInfo(ctx, store, info)
}

// internal returns the options of internal/dockerfile.
func (o *buildOptions) internal() dockerfile.Options {
	dial := o.dialer
	if dial == nil {
		dial = DefaultDialer()
	}
	bo := dockerfile.Options{
		Context:       o.contextDir,
		Args:          o.args,
		Target:        o.target,
		NoCache:       o.noCache,
		NoCacheStages: o.noCacheStages,
		Platform:      o.pull.platform,
		Network:       o.network,
		Dial:          dial,
		Secrets:       o.secrets,
		SSH:           o.ssh,
		Parallelism:   o.parallelism,
	}
	if bo.Parallelism == 0 {
		bo.Parallelism = runtime.GOMAXPROCS(0)
	}
	return bo
}

// recordedLayers returns the layers of the snapshot record key.
func recordedLayers(store *image.Store, key string) []v1.Hash {
	info, err := snapshot.Get(store, key)
	if err != nil {
		return nil
	}
	return info.Layers
}

// buildRef is a build's ref: an image of the store, or a snapshot.
type buildRef struct {
	key    string
	config []byte
	layers []v1.Hash
	dirs   []string
	info   *snapshot.Info // nil for an image
	image  *Image         // the image, when info is nil and host is ""
	host   string         // the host image's key, when the ref stands on it
}

// Key, Config and Layers make a buildRef a dockerfile.Ref.
func (r *buildRef) Key() string      { return r.key }
func (r *buildRef) Config() []byte   { return r.config }
func (r *buildRef) Layers() []string { return r.dirs }

// parent describes the ref as what a snapshot stands on.
func (r *buildRef) parent() snapshot.Parent {
	return snapshot.Parent{Key: r.key, Layers: r.layers, Config: r.config, Host: r.host}
}

// source returns what New starts a sandbox of the ref from.
func (r *buildRef) source(store *image.Store) Source {
	if r.info == nil {
		if r.host != "" {
			return HostImage()
		}
		return r.image
	}
	var cfg v1.ConfigFile
	json.Unmarshal(r.info.Config, &cfg)
	return &Snapshot{info: r.info, store: store, cfg: &cfg, lease: &image.Lease{}}
}
