package helper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/netutil"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// handler serves one client: its instance's life, and everything else
// forwarded to the instance's agent.
type handler struct {
	log *slog.Logger

	mu   sync.Mutex
	inst *engine.Instance // guarded by mu; nil before MsgInstanceNew
}

func newHandler(log *slog.Logger) *handler {
	return &handler{log: log}
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

// ServeCall implements ipc.CallHandler.
func (h *handler) ServeCall(ctx context.Context, req *ipc.Request) (*ipc.Response, error) {
	switch req.Type {
	case ipc.MsgInstanceNew:
		return h.newInstance(req)
	case ipc.MsgInstanceClose:
		closeFiles(req.Files)
		inst, err := h.instance()
		if err != nil {
			return nil, err
		}
		return success(), inst.Close()
	case ipc.MsgInstanceWait:
		closeFiles(req.Files)
		inst, err := h.instance()
		if err != nil {
			return nil, err
		}
		select {
		case <-inst.Done():
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		return success(), inst.Err()
	case ipc.MsgInstanceID:
		closeFiles(req.Files)
		inst, err := h.instance()
		if err != nil {
			return nil, err
		}
		return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().String(inst.ID()).Build()}, nil
	case ipc.MsgInstanceIsRunning:
		closeFiles(req.Files)
		inst, err := h.instance()
		if err != nil {
			return nil, err
		}
		running := true
		select {
		case <-inst.Done():
			running = false
		default:
		}
		return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().Bool(running).Build()}, nil
	case ipc.MsgInstanceOpenLink:
		return h.openLink(req)
	case ipc.MsgFsSnapshot:
		return h.snapshot(req)
	case ipc.MsgInstanceStats:
		closeFiles(req.Files)
		inst, err := h.instance()
		if err != nil {
			return nil, err
		}
		n := 0
		if c, ok := inst.Sandbox().(hv.OOMCounter); ok {
			n = c.OOMKills()
		}
		return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().Uint32(uint32(n)).Build()}, nil
	case ipc.MsgInstanceSetTimeout:
		closeFiles(req.Files)
		inst, err := h.instance()
		if err != nil {
			return nil, err
		}
		ns, err := req.Decoder().Int64()
		if err != nil {
			return nil, err
		}
		if ns <= 0 {
			return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("timeout of %d ns", ns)}
		}
		return success(), inst.SetTimeout(time.Duration(ns))
	}
	return h.forward(req)
}

// newInstance starts the instance the client describes.
func (h *handler) newInstance(req *ipc.Request) (*ipc.Response, error) {
	closeFiles(req.Files)
	dec := req.Decoder()
	opts, err := ipc.DecodeInstanceOptions(dec)
	if err != nil {
		return nil, err
	}
	spec, err := ipc.DecodeInstanceSpec(dec)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inst != nil {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "this helper already serves an instance"}
	}
	backend, err := engine.LookupBackend(spec.Backend)
	if err != nil {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: err.Error()}
	}
	es := engine.Spec{
		Layers:    spec.Layers,
		Hostname:  spec.Hostname,
		MemoryMB:  opts.MemoryMB,
		CPUs:      float64(spec.CPUsMilli) / 1000,
		PidsMax:   spec.PidsMax,
		NoFile:    spec.NoFile,
		DiskMB:    spec.DiskMB,
		Network:   spec.Network,
		Timeout:   time.Duration(opts.TimeoutSecs * float64(time.Second)),
		StateRoot: spec.StateRoot,
		Kernel:    spec.Kernel,
		CacheDir:  spec.CacheDir,
		Backend:   backend,
		Logger:    h.log,
	}
	for _, m := range opts.Mounts {
		es.Binds = append(es.Binds, hv.Bind{HostPath: m.HostPath, Path: m.Tag, Writable: m.Writable})
	}
	inst, err := engine.Start(req.Context(), es)
	if err != nil {
		return nil, err
	}
	h.inst = inst
	var channel *os.File
	if c, ok := inst.Sandbox().(hv.Channeler); ok && spec.WantFD && req.CanPassDescriptors() {
		if channel, err = c.Channel(); err != nil {
			h.log.Warn("sharing the agent channel", "err", err)
		}
	}
	rb := ipc.NewResponseBuilder().Success().String(inst.ID()).Int32(int32(inst.Sandbox().Pid())).
		Bool(inst.Capabilities().PassesDescriptors).Bool(channel != nil)
	resp := &ipc.Response{Payload: rb.Build()}
	if channel != nil {
		resp.Files = []*os.File{channel}
	}
	return resp, nil
}

// openLink creates the instance's egress device, where the helper can.
func (h *handler) openLink(req *ipc.Request) (*ipc.Response, error) {
	closeFiles(req.Files)
	inst, err := h.instance()
	if err != nil {
		return nil, err
	}
	ifname, err := req.Decoder().String()
	if err != nil {
		return nil, err
	}
	l, ok := inst.Sandbox().(hv.NetworkLinker)
	if !ok {
		return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().Bool(false).Build()}, nil
	}
	f, err := l.OpenLink(ifname)
	if errors.Is(err, hv.ErrLinkViaAgent) {
		return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().Bool(false).Build()}, nil
	}
	if err != nil {
		return nil, err
	}
	return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().Bool(true).Build(), Files: []*os.File{f}}, nil
}

// snapshot captures the instance's changes into the store (the helper
// reads the writable layer; the client may not be able to). Request:
// SnapshotOptions, then the parent (snapshot.Parent as JSON bytes).
// Answer: the snapshot.Info as JSON bytes.
func (h *handler) snapshot(req *ipc.Request) (*ipc.Response, error) {
	closeFiles(req.Files)
	inst, err := h.instance()
	if err != nil {
		return nil, err
	}
	dec := req.Decoder()
	opts, err := ipc.DecodeSnapshotOptions(dec)
	if err != nil {
		return nil, err
	}
	pj, err := dec.Bytes()
	if err != nil {
		return nil, err
	}
	var parent snapshot.Parent
	if err := json.Unmarshal(pj, &parent); err != nil {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "snapshot parent: " + err.Error()}
	}
	store, err := image.Open(opts.CacheDir, image.Options{Logger: h.log})
	if err != nil {
		return nil, err
	}
	info, err := inst.Snapshot(req.Context(), store, opts.Excludes, parent, h.log)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().Bytes(data).Build()}, nil
}

// forward passes a request to the agent and its answer back, descriptors
// and streams included.
func (h *handler) forward(req *ipc.Request) (*ipc.Response, error) {
	defer closeFiles(req.Files) // the agent got its own copies
	inst, err := h.instance()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if blocking[req.Type] {
		ctx = req.Context() // a client that gives up cancels the agent's call
	}
	msg := ipc.Message{Type: req.Type, Payload: append([]byte(nil), req.Payload...), Files: req.Files}
	resp, conn, err := inst.Client().HijackIf(ctx, msg, func(resp ipc.Message) bool { return streams(req.Type, resp) })
	if err != nil {
		if errors.Is(err, ipc.ErrTransport) {
			if rerr := inst.Err(); rerr != nil {
				return nil, rerr
			}
			return nil, fmt.Errorf("sandbox %s: %w", inst.ID(), ipc.ErrNotRunning)
		}
		return nil, err
	}
	out := &ipc.Response{Payload: resp.Payload, Files: resp.Files}
	if conn != nil {
		out.Hijack = func(client net.Conn) { go netutil.Splice(client, conn) }
	}
	return out, nil
}

// blocking are the messages whose handlers wait for something: the
// client's hang-up must reach them.
var blocking = map[uint16]bool{
	ipc.MsgCmdWait: true, ipc.MsgListenerAccept: true, ipc.MsgNetDial: true,
	ipc.MsgFileRead: true, ipc.MsgFileReadAt: true,
}

// streams reports whether the agent's answer to a request of type req turned
// its connection into a stream (see internal/ipc's netproto.go and
// agentproto.go).
func streams(req uint16, resp ipc.Message) bool {
	switch req {
	case ipc.MsgCmdAttach, ipc.MsgListenerAccept:
		return true
	case ipc.MsgNetDial, ipc.MsgNetListenPacket:
		return len(resp.Files) == 0
	}
	return false
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

func success() *ipc.Response {
	return &ipc.Response{Payload: ipc.NewResponseBuilder().Success().Build()}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
