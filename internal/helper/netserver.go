package helper

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/egress"
	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/netutil"
)

// NetServer is a network helper (cc-helper serve): one long-lived process
// serving many clients over TCP with mutual TLS, each with sandboxes of
// its own, run by the engine in this process. Every connection completes
// its TLS handshake (within HandshakeTimeout) before a byte of it is read
// as a message; a client certificate must chain to the configured CA, and
// its common name is the client's identity. Images come by reference into
// the helper's own store; a client names no path of this host except a
// mount the policy allows.
type NetServer struct {
	cfg    *ServeConfig
	log    *slog.Logger
	tls    *tls.Config // nil: plaintext on loopback
	ln     net.Listener
	srv    *ipc.Server
	store  *image.Store
	root   string // the store's directory
	ledger *ledger
	// pulls is the transport of clients' pulls, one for all of them so
	// that they share its connections (see pull)
	pulls *http.Transport

	sessions atomic.Uint64 // connections past the handshake
	refused  atomic.Uint64 // connections refused at the handshake
	messages atomic.Uint64 // messages served
	layers   atomic.Uint64 // layers clients sent (MsgRemotePutLayer)

	uploadWindow time.Duration // see uploadWindow; tests shorten it
	uploads      slots         // layer uploads in progress (MsgRemotePutLayer)
	streams      slots         // streamed file transfers in progress
	agentStreams slots         // the agent's streams in progress, file transfers included
	conns        slots         // connections past the handshake, until they end or become a stream
	quotaMu      sync.Mutex
	booked       map[string]int64 // guarded by quotaMu: bytes on their way in by client (see storeRoom)
	quotaLocks   clientLocks      // each client's lock of storeRoom
	snapLocks    clientLocks      // each client's lock of its snapshots, taken one at a time (see session.snapshot)

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	pending   sync.WaitGroup // connections in their handshake
	streaming sync.WaitGroup // connections that became an agent's stream (see session.ServeCall)

	handshakes slots         // connections in their handshake, by remote address, to bound them
	served     chan struct{} // closed when Serve has returned
	started    atomic.Bool   // Serve was called
}

// NewNetServer listens as cfg says and opens the helper's store. It
// returns an error for unreadable certificates, a store that cannot be
// opened, or an address it cannot listen on.
func NewNetServer(cfg *ServeConfig, log *slog.Logger) (*NetServer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &NetServer{cfg: cfg, log: log, served: make(chan struct{}), uploadWindow: uploadWindow,
		uploads: slots{what: "layer uploads", perClient: maxUploadsPerClient, total: maxUploads},
		streams: slots{what: "streamed file transfers", perClient: maxStreamsPerClient, total: maxStreams},
		conns:   slots{what: "connections", perClient: maxConnsPerClient, total: maxConns},
		agentStreams: slots{what: "streams (connections, accepted connections, commands' attached input and output)",
			perClient: maxAgentStreamsPerClient, total: maxAgentStreams},
		handshakes: slots{what: "connections in their handshake", perClient: maxHandshakesPerHost, total: maxHandshakes},
		ledger:     newLedger(cfg.MaxInstances, cfg.Policy, cfg.ClientGrace),
		pulls:      egress.GuardedTransport(cfg.RegistryAllow...)}
	if !cfg.InsecureLoopback {
		tc, err := serverTLS(cfg)
		if err != nil {
			return nil, err
		}
		s.tls = tc
	}
	s.root = cfg.Store
	if s.root == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, errors.New("no store directory: give -store")
		}
		s.root = filepath.Join(d, "cc-helper")
	}
	store, err := image.Open(s.root, image.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("-store: %w", err)
	}
	s.store = store
	lc := net.ListenConfig{KeepAliveConfig: KeepAlive, Control: controlUserTimeout}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.srv = ipc.NewServerListener(ln, nil)
	s.srv.SetInfo(fmt.Sprintf("cc-helper serve pid %d", os.Getpid()))
	s.srv.SetLogger(log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// LayersReceived returns how many layers clients have begun to send
// (MsgRemotePutLayer), whether the store held them already or refused
// them.
func (s *NetServer) LayersReceived() uint64 { return s.layers.Load() }

// MessagesServed returns how many messages the helper has begun to serve,
// its own and those it forwards to agents.
func (s *NetServer) MessagesServed() uint64 { return s.messages.Load() }

// Addr returns the address the helper listens on.
func (s *NetServer) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close; it returns nil then, or the
// listener's error.
func (s *NetServer) Serve() error {
	if s.started.Swap(true) {
		return errors.New("cc-helper serve: Serve called twice")
	}
	defer close(s.served)
	var pause time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Out of descriptors (peers in their handshake, clients'
			// connections and streams all hold some): wait for room
			// rather than stop serving everyone.
			if netutil.WaitOutAccept(err, &pause, s.ctx.Done()) {
				s.log.Warn("accept: no room for a connection, waited", "err", err, "pause", pause)
				continue
			}
			if s.ctx.Err() != nil {
				return nil
			}
			return err
		}
		pause = 0
		// Peers not yet proven hold a goroutine each for up to
		// HandshakeTimeout: past the bounds, of one address and in all,
		// one more is closed.
		release, err := s.handshakes.take(remoteHost(conn))
		if err != nil {
			s.refused.Add(1)
			conn.Close()
			continue
		}
		s.pending.Add(1)
		go s.handshake(conn, release)
	}
}

// Connections in their TLS handshake at once, from one address and in
// all.
const (
	maxHandshakesPerHost = 128
	maxHandshakes        = 4096
)

// remoteHost returns the address conn comes from, without its port.
func remoteHost(conn net.Conn) string {
	host, _, err := net.SplitHostPort(conn.RemoteAddr().String())
	if err != nil {
		return conn.RemoteAddr().String()
	}
	return host
}

// handshake proves the client's certificate, then serves the connection.
// A connection that fails is closed with nothing read from it as a
// message.
func (s *NetServer) handshake(conn net.Conn, proven func()) {
	defer proven()
	client := InsecureClient
	if s.tls != nil {
		tc := tls.Server(conn, s.tls)
		tc.SetDeadline(time.Now().Add(HandshakeTimeout))
		err := tc.HandshakeContext(s.ctx)
		if err == nil {
			client, err = clientName(tc.ConnectionState())
		}
		if err != nil {
			s.refused.Add(1)
			s.log.Info("refusing a connection", "remote", conn.RemoteAddr().String(), "err", err)
			tc.Close()
			s.pending.Done()
			return
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	proven()
	release, err := s.conns.take(client)
	if err != nil {
		s.refused.Add(1)
		s.log.Info("refusing a connection", "client", client, "err", err)
		conn.Close()
		s.pending.Done()
		return
	}
	defer release()
	s.sessions.Add(1)
	s.pending.Done()
	sess := newSession(s, client)
	s.srv.ServeConnWith(conn, sess)
	sess.end()
}

// Connections at once, of one client and in all: each holds buffers and
// a goroutine however idle it is. A sandbox takes a few (its control
// connection, one per call in flight); a connection that becomes a stream
// counts among the streams instead (maxAgentStreams).
const (
	maxConnsPerClient = 1024
	maxConns          = 16384
)

// capacity answers MsgRemoteCapacity.
func (s *NetServer) capacity(client string) ipc.CapacityAns {
	a := s.ledger.capacity(client)
	a.Sessions, a.Refused, a.Messages = s.sessions.Load(), s.refused.Load(), s.messages.Load()
	return a
}

// pull gets an image into the helper's store for client. A layer the
// store holds that client may not use (another client brought it) must
// still come from the registry, checked against the manifest (see
// image.PullOptions.Verify); the client may use each layer the pull
// checked (PullOptions.Checked) then.
func (s *NetServer) pull(ctx context.Context, client string, m *ipc.PullReq) (ipc.PullAns, error) {
	var mu sync.Mutex
	checked := map[v1.Hash]bool{}
	// The client names the registry, and with it where this host's
	// requests go (redirects and token realms included): they pass the
	// egress rules a sandbox's would, so that a client reaches no service
	// on this host's loopback or addresses, nor a metadata address, and
	// reads no answer of one in the pull's error (-allow-registry lets
	// the operator's own registry through).
	po := image.PullOptions{Policy: image.PullPolicy(m.Policy), PlainHTTP: m.PlainHTTP, Unlocked: true,
		Transport: s.pulls,
		Verify:    func(h v1.Hash) bool { return !s.usable(client, h) },
		Checked: func(h v1.Hash) {
			mu.Lock()
			checked[h] = true
			mu.Unlock()
		}}
	if m.Platform != "" {
		p, err := image.ParsePlatform(m.Platform)
		if err != nil {
			return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: err.Error()}
		}
		po.Platform = p
	}
	p, err := s.store.Pull(ctx, m.Ref, po)
	if err != nil {
		return ipc.PullAns{}, err
	}
	for _, l := range p.Image.Layers {
		switch {
		case s.usable(client, l):
		case checked[l]:
			if err := s.grantPulled(ctx, client, l); err != nil {
				return ipc.PullAns{}, err
			}
		default: // it turned private while this pull found it in the store
			return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeUnknown, Message: fmt.Sprintf("pulling %s: layer %s was not checked against the registry in this pull: pull again", m.Ref, l)}
		}
	}
	return pullAnswer(p.Image, p.Reference), nil
}

func pullAnswer(rec image.ImageRecord, ref string) ipc.PullAns {
	a := ipc.PullAns{Digest: rec.Digest.String(), Ref: ref, Config: rec.Config}
	for _, l := range rec.Layers {
		a.Layers = append(a.Layers, l.String())
	}
	return a
}

// image returns the record of the image m asks for, and the key its
// sandboxes' snapshots stand on: by digest when the store has it and
// client may use it and all its layers (see usable), else pulled by
// reference; the zero record for scratch.
func (s *NetServer) image(ctx context.Context, client string, m *ipc.RemoteNewReq) (image.ImageRecord, string, error) {
	if m.Image.Ref == "" && m.Digest == "" {
		return image.ImageRecord{}, "scratch", nil
	}
	if m.Digest != "" {
		h, err := v1.NewHash(m.Digest)
		if err != nil {
			return image.ImageRecord{}, "", &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "image digest: " + err.Error()}
		}
		if rec, ok := s.clientImage(client, h); ok {
			return rec, s.clientImageKey(h), nil
		}
		if rec, err := s.store.Image(h); err == nil && s.usableLayers(client, rec) {
			return rec, "image-" + h.Hex, nil
		}
		if m.Image.Ref == "" {
			return image.ImageRecord{}, "", &ipc.IPCError{Code: ipc.ErrCodeNotExist, Message: fmt.Sprintf("image %s is not in the helper's store, and no reference to pull it by", m.Digest)}
		}
	}
	ans, err := s.pull(ctx, client, &m.Image)
	if err != nil {
		return image.ImageRecord{}, "", err
	}
	if m.Digest != "" && ans.Digest != m.Digest {
		return image.ImageRecord{}, "", &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument,
			Message: fmt.Sprintf("%s is %s on the helper's registry, not %s", m.Image.Ref, ans.Digest, m.Digest)}
	}
	h, _ := v1.NewHash(ans.Digest)
	rec, err := s.store.Image(h)
	return rec, "image-" + h.Hex, err
}

// checkMount returns the bind of a helper-side path the policy allows, or
// an error matching fs.ErrPermission. The path is resolved (symlinks
// followed) before it is compared, so a link inside an allowed directory
// cannot lead out of it.
func (s *NetServer) checkMount(m ipc.RemoteMount) (hv.Bind, error) {
	refuse := func(why string) (hv.Bind, error) {
		return hv.Bind{}, &ipc.IPCError{Code: ipc.ErrCodePermission, Message: fmt.Sprintf("mount of helper path %q: %s", m.HostPath, why)}
	}
	if len(s.cfg.Policy.AllowMounts) == 0 {
		return refuse("this helper's policy allows no helper-side mounts (allowMounts)")
	}
	if !filepath.IsAbs(m.HostPath) || !strings.HasPrefix(m.Path, "/") {
		return refuse("paths must be absolute")
	}
	real, err := filepath.EvalSymlinks(m.HostPath)
	if err != nil {
		return refuse(err.Error())
	}
	for _, allowed := range s.cfg.Policy.AllowMounts {
		if real == allowed || strings.HasPrefix(real, allowed+string(filepath.Separator)) {
			// Resolved: the backend opens real following no link, so
			// that a component a sandbox swaps for one after this check
			// (it may write in an allowed directory) fails the start.
			return hv.Bind{HostPath: real, Path: filepath.Clean(m.Path), Writable: m.Writable, Resolved: true}, nil
		}
	}
	return refuse("not under a directory the helper's policy allows (allowMounts)")
}

// newInstance starts a sandbox for client, within its limits.
func (s *NetServer) newInstance(ctx context.Context, client string, m *ipc.RemoteNewReq) (ipc.RemoteNewAns, error) {
	spec := engine.Spec{
		Hostname: m.Hostname, MemoryMB: m.MemoryMB, CPUs: float64(m.CPUsMilli) / 1000,
		PidsMax: s.ledger.limits(client).pids(m.PidsMax), NoFile: m.NoFile, DiskMB: m.DiskMB, Timeout: time.Duration(m.TimeoutNs),
		Network:   m.Network,
		StateRoot: filepath.Join(s.root, "instances"), CacheDir: s.root, Logger: s.log,
	}
	backend, err := engine.LookupBackend(m.Backend)
	if err != nil {
		return ipc.RemoteNewAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: err.Error()}
	}
	spec.Backend = backend
	for _, mt := range m.Mounts {
		b, err := s.checkMount(mt)
		if err != nil {
			return ipc.RemoteNewAns{}, err
		}
		spec.Binds = append(spec.Binds, b)
	}
	// The ledger books memory as int64 and the cgroup gets MemoryMB<<20
	// bytes: past hv.MaxMemoryMB either wraps (2^63+64 MB is booked below
	// zero and runs at 64 MiB), so it is refused before either.
	if m.MemoryMB > hv.MaxMemoryMB {
		return ipc.RemoteNewAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument,
			Message: fmt.Sprintf("memory limit %d MB: at most %d MB", m.MemoryMB, hv.MaxMemoryMB)}
	}
	if m.DiskMB > hv.MaxDiskMB {
		return ipc.RemoteNewAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument,
			Message: fmt.Sprintf("disk limit %d MB: at most %d MB", m.DiskMB, hv.MaxDiskMB)}
	}
	release, err := s.ledger.reserve(client, int64(m.MemoryMB))
	if err != nil {
		return ipc.RemoteNewAns{}, err
	}
	defer release()
	rec, key, err := s.image(ctx, client, m)
	if err != nil {
		return ipc.RemoteNewAns{}, err
	}
	ni := &netInstance{owner: client, memMB: int64(m.MemoryMB), config: rec.Config, layers: rec.Layers, imageKey: key}
	if len(rec.Layers) > 0 {
		if ni.lease, err = s.store.Lease(ctx, rec.Layers); err != nil {
			return ipc.RemoteNewAns{}, err
		}
		for _, id := range rec.Layers {
			spec.Layers = append(spec.Layers, s.store.LayerDir(id))
		}
	}
	inst, err := engine.Start(ctx, spec)
	if err != nil {
		if ni.lease != nil {
			ni.lease.Release()
		}
		return ipc.RemoteNewAns{}, err
	}
	ni.inst, ni.id = inst, inst.ID()
	s.ledger.add(ni)
	s.log.Info("started a sandbox", "client", client, "id", ni.id)
	return ipc.RemoteNewAns{ID: ni.id, Config: rec.Config}, nil
}

// Close stops accepting, closes every connection, stops every sandbox and
// waits until all is gone. It returns the listener's error, if any.
func (s *NetServer) Close() error {
	s.cancel()
	err := s.srv.Close() // the listener too
	s.pending.Wait()
	s.ledger.closeAll()
	s.streaming.Wait() // each ends with its sandbox
	if s.started.Load() {
		<-s.served
	}
	s.pulls.CloseIdleConnections()
	return err
}
