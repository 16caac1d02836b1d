package helper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"

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

// missingLayers answers MsgRemoteLayers.
func (s *NetServer) missingLayers(m *ipc.LayersReq) (ipc.LayersAns, error) {
	hs, err := diffIDs(m.DiffIDs)
	if err != nil {
		return ipc.LayersAns{}, err
	}
	var a ipc.LayersAns
	for _, h := range hs {
		if !s.store.HasLayer(h) {
			a.Missing = append(a.Missing, h.String())
		}
	}
	return a, nil
}

// putLayer answers MsgRemotePutLayer: once the success answer is out, the
// connection's next m.Size bytes are the layer's tar, which the store
// unpacks (checked against m.DiffID) while they arrive; the status frame
// then says whether it is in the store. A stream that fails half way is
// still read to its end, so the client never blocks. The helper's Close
// ends a stream in progress.
func (s *NetServer) putLayer(req *ipc.Request, m *ipc.PutLayerReq) (ipc.Empty, error) {
	hs, err := diffIDs([]string{m.DiffID})
	if err != nil {
		return ipc.Empty{}, err
	}
	if m.Size > uint64(image.DefaultMaxBytes) {
		return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument,
			Message: fmt.Sprintf("layer %s: %d bytes, more than the %d a layer may have", m.DiffID, m.Size, image.DefaultMaxBytes)}
	}
	req.HijackWith(func(conn net.Conn) {
		defer conn.Close()
		stop := context.AfterFunc(s.ctx, func() { conn.Close() })
		defer stop()
		rest := &io.LimitedReader{R: conn, N: int64(m.Size)}
		src := image.LayerSource{DiffID: hs[0], Open: func() (io.ReadCloser, error) { return io.NopCloser(rest), nil }}
		s.layers.Add(1)
		_, err := s.store.AddLayer(s.ctx, src, nil)
		io.Copy(io.Discard, rest) // the store had it (nothing was read), or refused it half way
		if err == nil && rest.N > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			s.log.Info("refusing a layer", "layer", m.DiffID, "err", err)
		}
		ipc.WriteStatus(conn, err)
	})
	return ipc.Empty{}, nil
}

// putImage answers MsgRemoteImage: the image m's config describes, every
// layer of which must be in the store, recorded under the config's digest.
func (s *NetServer) putImage(ctx context.Context, m *ipc.ImageReq) (ipc.PullAns, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(m.Config))
	if err != nil {
		return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "image config: " + err.Error()}
	}
	names := make([]string, len(cfg.RootFS.DiffIDs))
	for i, h := range cfg.RootFS.DiffIDs {
		names[i] = h.String()
	}
	layers, err := diffIDs(names)
	if err != nil {
		return ipc.PullAns{}, err
	}
	for _, h := range layers {
		if !s.store.HasLayer(h) {
			return ipc.PullAns{}, &ipc.IPCError{Code: ipc.ErrCodeNotExist,
				Message: fmt.Sprintf("layer %s is not in the helper's store: send it first (MsgRemotePutLayer)", h)}
		}
	}
	rec := image.ImageRecord{Digest: image.ConfigDigest(m.Config), Config: m.Config, Layers: layers}
	if err := s.store.PutImage(ctx, rec); err != nil {
		if errors.Is(err, context.Canceled) {
			return ipc.PullAns{}, err
		}
		return ipc.PullAns{}, fmt.Errorf("recording image %s: %w", rec.Digest, err)
	}
	return pullAnswer(rec, ""), nil
}
