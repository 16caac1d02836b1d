package helper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/netutil"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// handler serves one client: its instance's life (the messages whose
// descriptors name ipc.PeerHelper), and every message of the agent
// forwarded to the instance's agent, as the table describes it.
type handler struct {
	log *slog.Logger
	own *ipc.Mux // the helper's own messages

	mu   sync.Mutex
	inst *engine.Instance // guarded by mu; nil before MsgInstanceNew
}

func newHandler(log *slog.Logger) *handler {
	h := &handler{log: log, own: ipc.NewMux()}
	ipc.Route(h.own, ipc.MsgInstanceNew, h.newInstance)
	ipc.Route(h.own, ipc.MsgInstanceClose, func(*ipc.Request, *ipc.Empty) (ipc.Empty, error) {
		inst, err := h.instance()
		if err != nil {
			return ipc.Empty{}, err
		}
		return ipc.Empty{}, inst.Close()
	})
	routeInstance(h.own, h.instance)
	ipc.Route(h.own, ipc.MsgInstanceOpenLink, h.openLink)
	ipc.Route(h.own, ipc.MsgInstanceSnapshot, h.snapshot)
	for _, t := range []uint16{ipc.MsgRemoteAttach, ipc.MsgRemoteNew, ipc.MsgRemotePull, ipc.MsgRemoteCapacity, ipc.MsgRemoteTap,
		ipc.MsgRemoteLayers, ipc.MsgRemotePutLayer, ipc.MsgRemoteImage, ipc.MsgRemoteBuild} {
		h.own.HandleCall(t, ipc.CallHandlerFunc(func(context.Context, *ipc.Request) (*ipc.Response, error) {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeUnsupported,
				Message: fmt.Sprintf("%s is a network helper's message (cc-helper serve), not this one's", ipc.Describe(t).Name)}
		}))
	}
	return h
}

// instance returns the instance, or ErrInvalidHandle before one exists.
func (h *handler) instance() (*engine.Instance, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inst == nil {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidHandle, Message: "no instance: send MsgInstanceNew first"}
	}
	return h.inst, nil
}

// ServeCall implements ipc.CallHandler: the helper's own messages here,
// the agent's forwarded, anything else refused.
func (h *handler) ServeCall(ctx context.Context, req *ipc.Request) (*ipc.Response, error) {
	d := ipc.Describe(req.Type)
	switch {
	case d != nil && d.Peer&ipc.PeerHelper != 0:
		return h.own.ServeCall(ctx, req)
	case d != nil && d.Peer&ipc.PeerAgent != 0:
		return h.forward(req, d)
	}
	closeFiles(req.Files)
	return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("unknown message type: 0x%04x", req.Type)}
}

// newInstance starts the instance the client describes.
func (h *handler) newInstance(req *ipc.Request, m *ipc.NewReq) (ipc.NewAns, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inst != nil {
		return ipc.NewAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "this helper already serves an instance"}
	}
	es, err := engineSpec(m, h.log)
	if err != nil {
		return ipc.NewAns{}, err
	}
	inst, err := engine.Start(req.Context(), es)
	if err != nil {
		return ipc.NewAns{}, err
	}
	h.inst = inst
	ans := ipc.NewAns{ID: inst.ID(), Pid: int32(inst.Sandbox().Pid()), PassesFDs: inst.Capabilities().PassesDescriptors}
	if c, ok := inst.Sandbox().(hv.Channeler); ok && m.Spec.WantFD && req.CanPassDescriptors() {
		channel, err := c.Channel()
		if err != nil {
			h.log.Warn("sharing the agent channel", "err", err)
		} else {
			req.SendFiles(channel)
			ans.Channel = true
		}
	}
	return ans, nil
}

// openLink creates the instance's egress device, where the helper can.
func (h *handler) openLink(req *ipc.Request, m *ipc.LinkReq) (ipc.BoolAns, error) {
	inst, err := h.instance()
	if err != nil {
		return ipc.BoolAns{}, err
	}
	l, ok := inst.Sandbox().(hv.NetworkLinker)
	if !ok {
		return ipc.BoolAns{Value: false}, nil
	}
	f, err := l.OpenLink(m.Ifname)
	if errors.Is(err, hv.ErrLinkViaAgent) {
		return ipc.BoolAns{Value: false}, nil
	}
	if err != nil {
		return ipc.BoolAns{}, err
	}
	req.SendFiles(f)
	return ipc.BoolAns{Value: true}, nil
}

// snapshot captures the instance's changes into the store at the request's
// cache directory (the helper reads the writable layer; the client may not
// be able to).
func (h *handler) snapshot(req *ipc.Request, m *ipc.SnapshotReq) (ipc.SnapshotAns, error) {
	inst, err := h.instance()
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	var parent snapshot.Parent
	if err := json.Unmarshal(m.Parent, &parent); err != nil {
		return ipc.SnapshotAns{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "snapshot parent: " + err.Error()}
	}
	store, err := image.Open(m.Options.CacheDir, image.Options{Logger: h.log})
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	info, err := inst.Snapshot(req.Context(), store, m.Options.Excludes, parent, h.log)
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	data, err := json.Marshal(info)
	return ipc.SnapshotAns{Info: data}, err
}

// forward passes a request of the agent's to the agent and its answer
// back, descriptors and streams included, as the message's descriptor d
// says: a blocking call is cancelled when the client hangs up, and an
// answer that turns the agent's connection into a stream turns the
// client's into the same stream.
func (h *handler) forward(req *ipc.Request, d *ipc.Desc) (*ipc.Response, error) {
	defer closeFiles(req.Files) // the agent got its own copies
	inst, err := h.instance()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if d.Blocks {
		ctx = req.Context() // a client that gives up cancels the agent's call
	}
	return forwardTo(ctx, inst, req, d, nil)
}

// forwardTo passes req, of the agent's message d, to inst's agent, and its
// answer back (see handler.forward), the agent's call ending with ctx; the
// network helper forwards the same way. When the answer turns the
// connection into a stream, the stream ends when either side ends it or
// inst ends (a sandbox that is gone holds nothing open on the host), and
// ended (if not nil) is called once it has.
func forwardTo(ctx context.Context, inst *engine.Instance, req *ipc.Request, d *ipc.Desc, ended func()) (*ipc.Response, error) {
	msg := ipc.Message{Type: req.Type, Payload: append([]byte(nil), req.Payload...), Files: req.Files}
	resp, conn, err := inst.Client().HijackIf(ctx, msg, func(resp ipc.Message) bool { return d.Hijacks(len(resp.Files)) })
	if err != nil {
		return nil, agentErr(inst, err)
	}
	out := &ipc.Response{Payload: resp.Payload, Files: resp.Files}
	if conn != nil {
		out.Hijack = func(client net.Conn) {
			go func() {
				var watch *hangUpWatch
				if raw, isTLS := beneath(client); isTLS {
					c := client
					watch = newHangUpWatch(c, raw, func() { c.Close(); conn.Close() })
					client = watch
				}
				whileRunning(inst, func() { netutil.Splice(client, conn) }, client, conn)
				if watch != nil {
					watch.wg.Wait()
				}
				if ended != nil {
					ended()
				}
			}()
		}
	}
	return out, nil
}

// shutdown stops the instance when the client has gone.
func (h *handler) shutdown() {
	h.mu.Lock()
	inst := h.inst
	h.mu.Unlock()
	if inst != nil {
		inst.Close()
	}
}
