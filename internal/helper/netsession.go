package helper

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// session serves one connection of a network helper's client, whose
// identity (the certificate's common name) the TLS handshake proved. A
// session is either a client's own (MsgRemoteNew, MsgRemotePull,
// MsgRemoteCapacity, and the messages of images by content) or, after
// MsgRemoteAttach, one of an instance's: its lifecycle messages and the
// agent's, forwarded as the table says.
type session struct {
	srv    *NetServer
	client string
	own    *ipc.Mux

	mu sync.Mutex
	ni *netInstance // guarded by mu: the attached instance; nil before MsgRemoteAttach
}

func newSession(srv *NetServer, client string) *session {
	s := &session{srv: srv, client: client, own: ipc.NewMux()}
	ipc.Route(s.own, ipc.MsgRemoteAttach, s.attach)
	ipc.Route(s.own, ipc.MsgRemoteNew, func(req *ipc.Request, m *ipc.RemoteNewReq) (ipc.RemoteNewAns, error) {
		return srv.newInstance(req.Context(), client, m)
	})
	ipc.Route(s.own, ipc.MsgRemotePull, func(req *ipc.Request, m *ipc.PullReq) (ipc.PullAns, error) {
		return srv.pull(req.Context(), client, m)
	})
	ipc.Route(s.own, ipc.MsgRemoteLayers, func(_ *ipc.Request, m *ipc.LayersReq) (ipc.LayersAns, error) {
		return srv.missingLayers(client, m)
	})
	ipc.Route(s.own, ipc.MsgRemotePutLayer, func(req *ipc.Request, m *ipc.PutLayerReq) (ipc.Empty, error) {
		return srv.putLayer(client, req, m)
	})
	ipc.Route(s.own, ipc.MsgRemoteImage, func(req *ipc.Request, m *ipc.ImageReq) (ipc.PullAns, error) {
		return srv.putImage(req.Context(), client, m)
	})
	ipc.Route(s.own, ipc.MsgRemoteBuild, func(req *ipc.Request, m *ipc.BuildReq) (ipc.Empty, error) {
		return srv.build(client, req, m)
	})
	ipc.Route(s.own, ipc.MsgRemoteCapacity, func(*ipc.Request, *ipc.Empty) (ipc.CapacityAns, error) {
		return srv.capacity(client), nil
	})
	ipc.Route(s.own, ipc.MsgInstanceNew, func(*ipc.Request, *ipc.NewReq) (ipc.NewAns, error) {
		return ipc.NewAns{}, &ipc.IPCError{Code: ipc.ErrCodeUnsupported,
			Message: "a network helper starts sandboxes from image references (MsgRemoteNew), never from its host's paths"}
	})
	ipc.Route(s.own, ipc.MsgInstanceClose, func(*ipc.Request, *ipc.Empty) (ipc.Empty, error) {
		ni, err := s.instance()
		if err != nil {
			return ipc.Empty{}, err
		}
		return ipc.Empty{}, srv.ledger.close(ni)
	})
	routeInstance(s.own, s.engine)
	ipc.Route(s.own, ipc.MsgInstanceOpenLink, func(*ipc.Request, *ipc.LinkReq) (ipc.BoolAns, error) {
		return ipc.BoolAns{}, &ipc.IPCError{Code: ipc.ErrCodeUnsupported, Message: "egress devices cannot cross a network helper's connection: MsgRemoteTap carries their frames"}
	})
	ipc.Route(s.own, ipc.MsgRemoteTap, s.tap)
	ipc.Route(s.own, ipc.MsgInstanceSnapshot, s.snapshot)
	return s
}

// attach makes the session serve client's instance m.ID.
func (s *session) attach(_ *ipc.Request, m *ipc.InstanceAttachReq) (ipc.Empty, error) {
	ni, err := s.srv.ledger.get(s.client, m.ID)
	if err != nil {
		return ipc.Empty{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ni != nil {
		return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "this connection serves a sandbox already"}
	}
	s.ni = ni
	s.srv.ledger.attach(ni)
	return ipc.Empty{}, nil
}

// end detaches the session from its instance once the connection is gone.
func (s *session) end() {
	s.mu.Lock()
	ni := s.ni
	s.ni = nil
	s.mu.Unlock()
	if ni != nil {
		s.srv.ledger.detach(ni)
	}
}

// instance returns the attached instance, or ErrInvalidHandle.
func (s *session) instance() (*netInstance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ni == nil {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidHandle, Message: "no sandbox: send MsgRemoteAttach first"}
	}
	return s.ni, nil
}

// engine returns the attached instance's engine instance.
func (s *session) engine() (*engine.Instance, error) {
	ni, err := s.instance()
	if err != nil {
		return nil, err
	}
	return ni.inst, nil
}

// ServeCall implements ipc.CallHandler: the helper's own messages here,
// the agent's forwarded to the attached instance (its streamed file calls
// of regular files served here where its agent passes descriptors; see
// serveStream), anything else refused.
// Descriptors cannot come over TCP; the streamed path needs none.
func (s *session) ServeCall(ctx context.Context, req *ipc.Request) (*ipc.Response, error) {
	s.srv.messages.Add(1)
	d := ipc.Describe(req.Type)
	switch {
	case d != nil && d.Peer&ipc.PeerHelper != 0:
		return s.own.ServeCall(ctx, req)
	case d != nil && d.Peer&ipc.PeerAgent != 0:
		inst, err := s.engine()
		if err != nil {
			return nil, err
		}
		var st held
		if d.Hijack != ipc.HijackNever {
			release, err := s.srv.agentStreams.take(s.client)
			if err != nil {
				return nil, err
			}
			st.hold(release)
		}
		if req.Type == ipc.MsgFsWriteStream || req.Type == ipc.MsgFsReadStream {
			release, err := s.srv.streams.take(s.client)
			if err != nil {
				st.end()
				return nil, err
			}
			st.hold(release)
		}
		var resp *ipc.Response
		if servesStream(inst, req.Type) {
			resp, err = serveStream(req, inst, d, s.srv.uploadWindow, st.end)
		} else {
			// Any call may block in the agent (an open of a pipe nothing
			// reads does, and the sandbox makes the pipe): a client that
			// hangs up ends it, so that its session ends and its
			// sandbox's grace period starts.
			resp, err = forwardTo(req.Context(), inst, req, d, st.end)
		}
		if err != nil || resp.Hijack == nil {
			st.end()
		} else {
			// The connection becomes the stream, which Close waits for
			// (it ends with its sandbox at the latest). Its hijack runs
			// after this returns.
			s.srv.streaming.Add(1)
			st.hold(s.srv.streaming.Done)
			hijack := resp.Hijack
			resp.Hijack = func(c net.Conn) {
				streamUserTimeout(c)
				hijack(c)
			}
		}
		if err != nil && errors.Is(err, ipc.ErrNotRunning) {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeNotRunning, Message: err.Error()}
		}
		return resp, err
	}
	return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("unknown message type: 0x%04x", req.Type)}
}

// held is what a stream holds until it ends: each func given to hold gives
// one thing back, when end is called (at once if it was already).
type held struct {
	mu    sync.Mutex
	gives []func() // guarded by mu
	ended bool     // guarded by mu
}

// hold adds give to what end gives back.
func (h *held) hold(give func()) {
	h.mu.Lock()
	if !h.ended {
		h.gives = append(h.gives, give)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	give()
}

// end gives back what the stream holds; calls after the first do nothing.
func (h *held) end() {
	h.mu.Lock()
	gives := h.gives
	h.gives, h.ended = nil, true
	h.mu.Unlock()
	for _, give := range gives {
		give()
	}
}
