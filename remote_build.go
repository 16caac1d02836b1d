package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Build runs the Dockerfile src on the helper, as Build does here, and
// returns the image it makes as a Snapshot that stays in the helper's
// store: a source for r.New (and for a Fleet's New, which starts it on
// this helper); used here or on another helper it is an error. The
// build's steps run in sandboxes on the helper, one at a time, without
// network; the helper pulls the images FROM names (with WithPullOptions'
// options that Remote.Pull takes). The context (WithContextDir), less
// what its .dockerignore leaves out, is sent as a layer, and only when
// the helper lacks it. WithBuildArg(s), WithTarget, WithNoCache,
// WithSourceDateEpoch (or SOURCE_DATE_EPOCH here), WithBuildSecret and
// WithBuildSecretFile (read here, sent over the connection), WithPlatform
// and WithBuildProgress (called here as the helper's events arrive) work
// as for Build. The helper's step cache is this client's own. Options
// that name this machine's network, sockets, images or directories
// (WithBuildNetwork, WithBuildDialer, WithBuildSSH, WithBuildSource,
// WithCacheDir, and WithPullOptions' credentials and transports) are
// refused with an error matching errors.ErrUnsupported; the helper
// builds one stage at a time and logs to its own log, so
// WithBuildParallelism and WithLogger change nothing there.
// It returns the build's error, one matching fs.ErrPermission when the
// helper's policy is in the way, or the transport's.
func (r *Remote) Build(ctx context.Context, src []byte, opts ...BuildOption) (*Snapshot, error) {
	var o buildOptions
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("Remote.Build: nil option")
		}
		if err := opt.applyBuild(&o); err != nil {
			return nil, fmt.Errorf("Remote.Build: %w", err)
		}
	}
	req, err := remoteBuildRequest(src, &o)
	if err != nil {
		return nil, fmt.Errorf("Remote.Build: %w", err)
	}
	if o.contextDir != "" {
		if req.Context, err = r.sendContext(ctx, o.contextDir); err != nil {
			return nil, fmt.Errorf("Remote.Build: %w", err)
		}
	}
	var progress func(ipc.BuildEvent)
	if o.progress != nil {
		progress = func(ev ipc.BuildEvent) {
			o.progress(BuildProgress{Step: int(ev.Step), Total: int(ev.Total), Stage: ev.Stage, Instruction: ev.Instruction,
				Cached: ev.Cached, Done: ev.Done, Output: ev.Output})
		}
	}
	info, err := r.nc.Build(ctx, req, progress)
	if err != nil {
		return nil, fmt.Errorf("Remote.Build: %w", err)
	}
	rec, err := helper.SnapshotImage(info)
	if err != nil {
		return nil, fmt.Errorf("Remote.Build: %w", err)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(info.Config, &cfg); err != nil {
		return nil, fmt.Errorf("Remote.Build: the helper's snapshot %s: its config: %w", info.Key, err)
	}
	return &Snapshot{info: info, cfg: &cfg, onHelper: &helperSnapshot{addr: r.Addr(), digest: rec.Digest}}, nil
}

// remoteBuildRequest turns Build's options into what crosses the wire,
// refusing those that name this machine's things.
func remoteBuildRequest(src []byte, o *buildOptions) (*ipc.BuildReq, error) {
	refuse := func(what string) (*ipc.BuildReq, error) {
		return nil, fmt.Errorf("%s names this machine's %w", what, errors.ErrUnsupported)
	}
	switch {
	case o.network || o.dialer != nil || o.resolver != nil:
		return refuse("WithBuildNetwork (a build on a network helper has no network): its network is")
	case len(o.ssh) > 0:
		return refuse("WithBuildSSH: its agent socket is")
	case len(o.sources) > 0:
		return refuse("WithBuildSource: its image is")
	case o.cacheDir != "":
		return refuse("WithCacheDir: its directory is")
	}
	pull, err := pullRequestOf("", &o.pull)
	if err != nil {
		return nil, err
	}
	req := &ipc.BuildReq{Dockerfile: src, Target: o.target, NoCache: o.noCache, NoCacheStages: o.noCacheStages, Pull: *pull}
	for _, k := range slices.Sorted(maps.Keys(o.args)) {
		req.Args = append(req.Args, k+"="+o.args[k])
	}
	epoch, err := o.epoch()
	if err != nil {
		return nil, err
	}
	if !epoch.IsZero() {
		req.Epoch, req.HasEpoch = epoch.Unix(), true
	}
	for _, id := range slices.Sorted(maps.Keys(o.secrets)) {
		s := o.secrets[id]
		v := s.Value
		if v == nil {
			if v, err = os.ReadFile(s.File); err != nil {
				return nil, fmt.Errorf("build secret %q: %w", id, err)
			}
		}
		req.Secrets = append(req.Secrets, ipc.BuildSecret{ID: id, Value: v})
	}
	return req, nil
}

// sendContext makes sure the helper holds the build context dir as a
// layer, sending it when it lacks it, and returns its diffID. The tar is
// made twice (to name it, then to send it): a context that changes
// between is refused by the helper's check.
func (r *Remote) sendContext(ctx context.Context, dir string) (string, error) {
	h := sha256.New()
	n := &byteCounter{}
	if err := dockerfile.WriteContext(ctx, io.MultiWriter(h, n), dir); err != nil {
		return "", err
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	missing, err := r.nc.MissingLayers(ctx, []string{diffID})
	if err != nil || len(missing) == 0 {
		return diffID, err
	}
	err = r.nc.PutLayer(ctx, diffID, n.n, func(w io.Writer) error { return dockerfile.WriteContext(ctx, w, dir) })
	if err != nil {
		return "", fmt.Errorf("sending the build context: %w", err)
	}
	return diffID, nil
}

// byteCounter counts the bytes written to it.
type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
