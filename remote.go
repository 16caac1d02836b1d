package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"
)

// Remote is a network helper: a `cc-helper serve` process on another
// machine (or this one) that runs sandboxes for many clients, reached over
// TCP with mutual TLS. Its sandboxes are the same *Instance the local New
// returns: commands, files and network calls work unchanged (they travel
// as messages and streams over the connection). Images come by reference
// (the helper pulls them into its own store) or by content (an image or
// snapshot of this machine: the helper is sent the layers it lacks). A
// Remote is safe for
// concurrent use; after the helper has gone it dials again on the next
// call, so a helper that comes back is used again.
type Remote struct {
	nc    *helper.NetClient
	sends singleflight.Group // of sendContent, by imageContent.key
}

// DialRemote connects to the network helper at addr ("host:port") with
// tc, which must present a client certificate the helper's -client-ca
// trusts and trust the helper's certificate; TLS 1.3 is used whatever tc
// says. A nil tc means plaintext, allowed only to a loopback address (a
// helper started with -insecure-loopback, for tests). It returns an error
// matching ErrTransport-style connection failures when the helper cannot
// be reached or refuses the certificate.
func DialRemote(ctx context.Context, addr string, tc *tls.Config) (*Remote, error) {
	if tc == nil {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("sandbox.DialRemote %s: a TLS configuration is required off loopback", addr)
		}
	}
	nc, err := helper.DialNet(ctx, addr, tc)
	if err != nil {
		return nil, fmt.Errorf("sandbox.DialRemote: %w", err)
	}
	return &Remote{nc: nc}, nil
}

// Addr returns the helper's address, as DialRemote was given it.
func (r *Remote) Addr() string { return r.nc.Addr() }

// RemoteCapacity is what a network helper reports of itself to a client.
type RemoteCapacity struct {
	Max     int // sandboxes the helper runs at most (-max-instances)
	Running int // sandboxes it runs now, all clients'
	// Free is how many more sandboxes this client may start there now:
	// the helper's room, bounded by the client's own limit.
	Free int
	// MemoryFreeMB is the memory this client's sandboxes may still ask
	// for there; -1 when its policy sets no limit.
	MemoryFreeMB int64
}

// Capacity asks the helper how many more sandboxes this client may start
// there. It returns an error when the helper cannot be reached.
func (r *Remote) Capacity(ctx context.Context) (RemoteCapacity, error) {
	a, err := r.nc.Capacity(ctx)
	if err != nil {
		return RemoteCapacity{}, err
	}
	return RemoteCapacity{Max: int(a.MaxInstances), Running: int(a.Running), Free: int(a.Free), MemoryFreeMB: a.MemoryFreeMB}, nil
}

// remotePullRequest turns Pull's options into what crosses the wire. The
// registry credentials are the helper's own: WithAuth, WithKeychain and
// WithTransport cannot cross and are refused; WithProgress is not called.
func remotePullRequest(ref string, opts []PullOption) (*ipc.PullReq, error) {
	var o pullOptions
	for _, opt := range opts {
		if err := opt.applyPull(&o); err != nil {
			return nil, err
		}
	}
	return pullRequestOf(ref, &o)
}

// pullRequestOf is remotePullRequest once the options are applied.
func pullRequestOf(ref string, o *pullOptions) (*ipc.PullReq, error) {
	if o.auth != nil || o.keychain != nil || o.transport != nil {
		return nil, fmt.Errorf("credentials and transports cannot cross to a network helper (it pulls with its own): %w", errors.ErrUnsupported)
	}
	req := &ipc.PullReq{Ref: ref, Policy: uint8(o.policy), PlainHTTP: o.plainHTTP}
	if o.platform.OS != "" {
		req.Platform = image.FormatPlatform(o.platform)
	}
	return req, nil
}

// Pull has the helper pull the image ref names into its store, with the
// options that can cross (WithPlatform, WithPullPolicy, WithPlainHTTP),
// and returns it: a source for Remote.New (and Fleet.New, whose other
// helpers pull it when they first need it), whose layers live on the
// helper. It cannot start a local sandbox or be written out (those return
// an error). It returns the helper's pull error, or an error when it
// cannot be reached.
func (r *Remote) Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	req, err := remotePullRequest(ref, opts)
	if err != nil {
		return nil, fmt.Errorf("Remote.Pull: %w", err)
	}
	a, err := r.nc.Pull(ctx, req)
	if err != nil {
		return nil, err
	}
	return remoteImage(a, req)
}

// remoteImage makes the *Image of a helper's answer.
func remoteImage(a ipc.PullAns, req *ipc.PullReq) (*Image, error) {
	d, err := v1.NewHash(a.Digest)
	if err != nil {
		return nil, fmt.Errorf("the helper's image digest: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(a.Config))
	if err != nil {
		return nil, fmt.Errorf("the helper's image config: %w", err)
	}
	img := &Image{digest: d, ref: a.Ref, raw: a.Config, cfg: cfg, remote: req}
	for _, l := range a.Layers {
		h, err := v1.NewHash(l)
		if err != nil {
			return nil, fmt.Errorf("the helper's image layer: %w", err)
		}
		img.layers = append(img.layers, h)
	}
	return img, nil
}

func errRemoteImage(i *Image) error {
	return fmt.Errorf("image %s lives on a network helper: start it with Remote.New or Fleet.New: %w", i.digest, errors.ErrUnsupported)
}

// remoteNewRequest describes a sandbox of src for the network helper at
// addr.
func remoteNewRequest(addr string, src Source, o *newOptions) (*ipc.RemoteNewReq, error) {
	req := &ipc.RemoteNewReq{Backend: string(o.backend), Hostname: o.hostname, MemoryMB: o.memoryMB,
		CPUsMilli: uint32(o.cpus * 1000), PidsMax: o.pidsMax, NoFile: o.noFile, DiskMB: o.diskMB, TimeoutNs: int64(o.timeout),
		Network: o.network}
	img, ok := src.(*Image)
	switch {
	case !ok:
		snap, ok := src.(*Snapshot)
		if !ok || snap.onHelper == nil {
			return nil, fmt.Errorf("a %T names paths of this host; a network helper starts images and snapshots", src)
		}
		if snap.onHelper.addr != addr {
			return nil, snap.onHelper.errHere(snap)
		}
		req.Digest = snap.onHelper.digest.String()
	case img.remote != nil:
		req.Image, req.Digest = *img.remote, img.digest.String()
	case img.store == nil && len(img.layers) == 0: // Scratch
	default: // pulled here from a registry (contentOf): the helper pulls it too
		req.Image, req.Digest = ipc.PullReq{Ref: img.ref}, img.digest.String()
	}
	if o.kernel != "" {
		return nil, errors.New("WithKernel names a file of this host; a network helper uses its own kernel")
	}
	for _, b := range o.mounts {
		req.Mounts = append(req.Mounts, ipc.RemoteMount{HostPath: b.HostPath, Path: b.Path, Writable: b.Writable})
	}
	return req, nil
}

// New starts a sandbox of src on the helper and returns it once it is
// ready to run commands. src is an *Image or a *Snapshot: one from
// Remote.Pull or Fleet.Pull; a snapshot of one of this helper's sandboxes
// (Instance.Snapshot), which stays in its store; Scratch; a local image Pull got from a
// registry, which the helper pulls by its reference (its digest must
// match); or any other local image or snapshot (Build's result, a
// Snapshot, an image loaded from an archive), which is sent by content:
// the layers the helper's store lacks travel as tars, each checked by its
// digest there, and the helper then has the image under its config's
// digest (the layers are re-created from their files, so the digests are
// not those of the local store). WithMount names a path of the helper's host,
// which the helper refuses unless its policy allows it; WithKernel is
// refused. With WithNetwork (or SetNetworkEnabled) the sandbox's egress
// leaves from this process, not from the helper's host: the helper relays
// the device's frames over a connection of their own to the user-space
// stack here, and every flow goes through WithDialer's dialer (or
// DefaultDialer) on this host. It returns an error matching fs.ErrPermission
// when a limit of the helper's policy is in the way, and the helper's or
// the engine's error when the sandbox cannot start.
func (r *Remote) New(ctx context.Context, src Source, opts ...Option) (*Instance, error) {
	if src == nil {
		return nil, errors.New("Remote.New: nil source")
	}
	o, err := resolveNewOptions(opts)
	if err != nil {
		return nil, err
	}
	content, err := contentOf(src)
	if err != nil {
		return nil, fmt.Errorf("Remote.New: %w", err)
	}
	if content != nil {
		if src, err = r.sendContent(ctx, content); err != nil {
			return nil, fmt.Errorf("Remote.New: %w", err)
		}
	}
	req, err := remoteNewRequest(r.Addr(), src, &o)
	if err != nil {
		return nil, fmt.Errorf("Remote.New: %w", err)
	}
	run, config, err := r.nc.Start(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("Remote.New: %w", err)
	}
	var cfg *v1.ConfigFile
	if len(config) > 0 {
		if cfg, err = v1.ParseConfigFile(bytes.NewReader(config)); err != nil {
			run.Close()
			return nil, fmt.Errorf("Remote.New: the helper's image config: %w", err)
		}
	}
	inst := newInstanceOn(run, runConfigOf(cfg).withOptions(&o), snapshotParent{}, o)
	if o.network {
		if err := inst.SetNetworkEnabled(true); err != nil {
			inst.Close()
			return nil, fmt.Errorf("Remote.New: %w", err)
		}
	}
	return inst, nil
}

// Close closes every sandbox started through r (stopping them where the
// helper can still be reached) and the connection. It returns nil.
func (r *Remote) Close() error { return r.nc.Close() }

var _ runner = (*helper.NetInstance)(nil)
