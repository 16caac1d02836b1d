package helper

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// Images by content: a client that has an image the helper cannot pull
// (built or loaded on the client's machine) asks which of its layers the
// store lacks, streams those as plain tars, each checked against its
// diffID and unpacked with the store's limits (a hostile tar is refused
// whole and leaves nothing), then records the image by its config.

// maxImageLayers bounds the layers one MsgRemoteLayers or MsgRemoteImage
// may name (an OCI image rarely has more than a hundred; overlayfs takes
// about 500).
const maxImageLayers = 1024

// diffIDs parses a client's layer names.
func diffIDs(names []string) ([]v1.Hash, error) {
	if len(names) > maxImageLayers {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("%d layers: more than the %d an image may have here", len(names), maxImageLayers)}
	}
	hs := make([]v1.Hash, 0, len(names))
	for _, n := range names {
		h, err := v1.NewHash(n)
		if err != nil || h.Algorithm != "sha256" {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("layer %q: not a sha256 digest", n)}
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// missingLayers answers MsgRemoteLayers for client: the layers not
// usable by it (the store lacks them, or holds them as another client's).
func (s *NetServer) missingLayers(client string, m *ipc.LayersReq) (ipc.LayersAns, error) {
	hs, err := diffIDs(m.DiffIDs)
	if err != nil {
		return ipc.LayersAns{}, err
	}
	var a ipc.LayersAns
	for _, h := range hs {
		if !s.usable(client, h) {
			a.Missing = append(a.Missing, h.String())
		}
	}
	return a, nil
}

// putLayer answers MsgRemotePutLayer for client: once the success answer
// is out, the connection's next m.Size bytes are the layer's plain tar,
// which the store unpacks as it arrives into a temporary directory of its
// own, taking the layer's lock only to commit it once whole and matching
// m.DiffID (so a client that stalls holds nothing another's upload of the
// layer waits for, and a compressed stream, whatever it expands to, is
// read as it is and refused). When the store has the layer already the
// bytes are checked all the same: a client gets another's layer only by
// showing it has the same bytes. The status frame then says whether the
// layer is in the store, the client's to use. A stream that fails half
// way is still read to its end, so the client never blocks. The helper's
// Close ends a stream in progress.
func (s *NetServer) putLayer(client string, req *ipc.Request, m *ipc.PutLayerReq) (ipc.Empty, error) {
	hs, err := diffIDs([]string{m.DiffID})
	if err != nil {
		return ipc.Empty{}, err
	}
	h := hs[0]
	if m.Size > uint64(image.DefaultMaxBytes) {
		return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument,
			Message: fmt.Sprintf("layer %s: %d bytes, more than the %d a layer may have", m.DiffID, m.Size, image.DefaultMaxBytes)}
	}
	release, err := s.uploads.take(client)
	if err != nil {
		return ipc.Empty{}, err
	}
	unbook, err := s.storeRoom(client, int64(m.Size))
	if err != nil {
		release()
		return ipc.Empty{}, err
	}
	req.HijackWith(func(conn net.Conn) {
		defer release()
		defer unbook()
		defer conn.Close()
		stop := context.AfterFunc(s.ctx, func() { conn.Close() })
		defer stop()
		s.layers.Add(1)
		rest := &io.LimitedReader{R: &paceReader{conn: conn, window: s.uploadWindow, min: uploadMinBytes}, N: int64(m.Size)}
		err := s.receiveLayer(client, h, rest)
		io.Copy(io.Discard, rest) // what was not read: the layer was refused half way
		if err != nil {
			s.log.Info("refusing a layer", "client", client, "layer", m.DiffID, "err", err)
		}
		ipc.WriteStatus(conn, err)
	})
	return ipc.Empty{}, nil
}

// receiveLayer reads the layer h from r into the store (or checks r
// against h, when the store has it) and grants it to client.
func (s *NetServer) receiveLayer(client string, h v1.Hash, r *io.LimitedReader) error {
	read := false
	src := image.LayerSource{DiffID: h, Plain: true, Unlocked: true, Open: func() (io.ReadCloser, error) {
		read = true
		return io.NopCloser(r), nil
	}, BeforeCommit: func() error {
		// Marked once whole and checked, before it appears, so that no
		// other client ever sees it public and a refused upload marks
		// nothing.
		return s.markPrivate(s.ctx, h)
	}}
	if _, err := s.store.AddLayer(s.ctx, src, nil); err != nil {
		return err
	}
	if !read { // the store had it: check the bytes all the same
		src.Open = func() (io.ReadCloser, error) { return io.NopCloser(r), nil }
		if err := s.store.VerifyLayer(s.ctx, src); err != nil {
			return err
		}
	}
	if r.N > 0 {
		return fmt.Errorf("layer %s: %w", h, io.ErrUnexpectedEOF)
	}
	return s.grant(s.ctx, client, h)
}

// A layer stream must bring at least uploadMinBytes in every uploadWindow
// (a stall, or a trickle, is ended), so that a client holds a goroutine
// and a temporary directory only while it sends.
const (
	uploadWindow   = 2 * time.Minute
	uploadMinBytes = 1 << 20
)

// Uploads at once (MsgRemotePutLayer), in all and of one client: each
// holds buffers of a few MiB and a temporary directory.
const (
	maxUploads          = 32
	maxUploadsPerClient = 4
)

// paceReader reads conn, failing a read once a window of window has
// passed that brought fewer than min bytes.
type paceReader struct {
	conn   net.Conn
	window time.Duration
	min    int64
	got    int64     // in the current window
	until  time.Time // the current window's end
}

func (r *paceReader) Read(p []byte) (int, error) {
	if r.until.IsZero() || r.got >= r.min {
		r.until, r.got = time.Now().Add(r.window), 0
		r.conn.SetReadDeadline(r.until) // it holds until the next window
	}
	n, err := r.conn.Read(p)
	r.got += int64(n)
	return n, err
}

// slots counts work in progress by client (uploads, streamed transfers),
// each of which holds buffers and a goroutine or more, up to perClient of
// one client and total in all.
type slots struct {
	what             string // what a slot is for, as the refusal names it
	perClient, total int

	mu sync.Mutex
	n  map[string]int // guarded by mu
}

// setPerClient changes the bound of one client's slots (tests lower it
// while the helper serves).
func (sl *slots) setPerClient(n int) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.perClient = n
}

// take takes one of client's slots, or refuses (matching fs.ErrPermission)
// when the client or everyone has as many as they may. release gives it
// back; calls after the first do nothing.
func (sl *slots) take(client string) (release func(), err error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.n == nil {
		sl.n = map[string]int{}
	}
	total := 0
	for _, n := range sl.n {
		total += n
	}
	if sl.n[client] >= sl.perClient || total >= sl.total {
		return nil, &ipc.IPCError{Code: ipc.ErrCodePermission,
			Message: fmt.Sprintf("too many %s at once (at most %d of one client, %d in all): make fewer at a time", sl.what, sl.perClient, sl.total)}
	}
	sl.n[client]++
	return sync.OnceFunc(func() {
		sl.mu.Lock()
		defer sl.mu.Unlock()
		if sl.n[client]--; sl.n[client] == 0 {
			delete(sl.n, client)
		}
	}), nil
}

// Streamed file transfers at once (MsgFsWriteStream, MsgFsReadStream), in
// all and of one client: each holds a goroutine or three and, for a
// write the helper serves, up to two pieces of netStreamPiece bytes.
const (
	maxStreams          = 256
	maxStreamsPerClient = 32
)

// An agent's streams at once (a Dial, an Accept, a command's attached
// input and output: any message whose answer may become a stream), in
// all and of one client. Each holds two goroutines and, for a side that
// reads slower than the other writes, up to 2 MB of pieces a direction
// (see netutil.Splice): a client's streams hold at most about 1 GB.
const (
	maxAgentStreams          = 4096
	maxAgentStreamsPerClient = 256
)

// maxImageConfig bounds the config blob of an image recorded by content
// (Docker's and containerd's configs are kilobytes; a history of a
// thousand steps stays far below this).
const maxImageConfig = 4 << 20

// putImage answers MsgRemoteImage for client: the image m's config
// describes, every layer of which must be in the store and the client's to
// use, recorded as the client's under the config's digest (see
// putClientImage).
func (s *NetServer) putImage(ctx context.Context, client string, m *ipc.ImageReq) (ipc.PullAns, error) {
	if len(m.Config) > maxImageConfig {
		return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument,
			Message: fmt.Sprintf("image config of %d bytes: more than the %d this helper takes", len(m.Config), maxImageConfig)}
	}
	var cfg struct {
		RootFS struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(m.Config, &cfg); err != nil {
		return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "image config: " + err.Error()}
	}
	if cfg.RootFS.Type != "layers" {
		return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("image config: rootfs type %q, not \"layers\"", cfg.RootFS.Type)}
	}
	layers, err := diffIDs(cfg.RootFS.DiffIDs)
	if err != nil {
		return ipc.PullAns{}, err
	}
	for _, h := range layers {
		if !s.usable(client, h) {
			return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeNotExist,
				Message: fmt.Sprintf("layer %s is not in the helper's store: send it first (MsgRemotePutLayer)", h)}
		}
	}
	rec := image.ImageRecord{Digest: image.ConfigDigest(m.Config), Config: m.Config, Layers: layers}
	unbook, err := s.storeRoom(client, imageRecordSize(rec))
	if err != nil {
		return ipc.PullAns{}, err
	}
	defer unbook()
	if err := s.putClientImage(ctx, client, rec); err != nil {
		return ipc.PullAns{}, err
	}
	return pullAnswer(rec, ""), nil
}
