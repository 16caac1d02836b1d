package helper

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// tap serves MsgRemoteTap: it creates the attached instance's egress
// device, configured as m says, and then carries the device's ethernet
// frames on the connection, where the client's user-space stack answers
// them: the sandbox's flows leave from the client's host through its
// dialer, never from this one. The relay ends when the connection does,
// when the device goes (the sandbox stopped), or when the instance stops.
func (s *session) tap(req *ipc.Request, m *ipc.NetworkReq) (ipc.Empty, error) {
	ni, err := s.instance()
	if err != nil {
		return ipc.Empty{}, err
	}
	if !m.Enabled {
		return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "MsgRemoteTap creates a device: Enabled must be set"}
	}
	// One relay an instance: a new one ends the last and waits until its
	// device is gone, so that turning egress off and on again (or a client
	// asking again) finds the name free and nothing piles up.
	ni.relay.mu.Lock()
	defer ni.relay.mu.Unlock()
	if err := ni.relay.endLocked(req.Context()); err != nil {
		return ipc.Empty{}, err
	}
	inst := ni.inst
	link, err := openEgressLink(req.Context(), inst, *m)
	if err != nil {
		return ipc.Empty{}, err
	}
	done := make(chan struct{})
	ni.relay.done, ni.relay.link = done, link
	// Served or not (a client that hung up first), the server runs this
	// with the connection, closed in the second case; the relay then ends
	// at once and closes the device.
	req.HijackWith(func(conn net.Conn) {
		go func() {
			ipc.RelayLinkFrames(link, conn)
			close(done)
		}()
		go func() {
			select {
			case <-inst.Done():
				conn.Close() // ends the relay, which closes the device
			case <-done:
			}
		}()
	})
	return ipc.Empty{}, nil
}

// relaySlot holds an instance's one egress relay.
type relaySlot struct {
	mu   sync.Mutex
	done chan struct{} // guarded by mu: closed when the last relay has ended; nil before one
	link *os.File      // guarded by mu: the last relay's device; closing it ends the relay
}

// endLocked ends the last relay, if it still runs, and waits until it has
// closed its device or ctx ends. The caller holds r.mu.
func (r *relaySlot) endLocked(ctx context.Context) error {
	if r.done == nil {
		return nil
	}
	r.link.Close()
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.done, r.link = nil, nil
	return nil
}

// openEgressLink creates inst's egress device as a local client would
// (Instance.startEgress): the backend's own where it has one, configured
// by the agent, otherwise a TAP device the agent creates and configures.
func openEgressLink(ctx context.Context, inst *engine.Instance, m ipc.NetworkReq) (*os.File, error) {
	agent := ipc.NewAgent(inst.Client())
	if l, ok := inst.Sandbox().(hv.NetworkLinker); ok {
		f, err := l.OpenLink(m.Ifname)
		switch {
		case err == nil:
			m.CreateTap = false
			if _, err := agent.SetNetwork(ctx, m); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		case !errors.Is(err, hv.ErrLinkViaAgent):
			return nil, err
		}
	}
	m.CreateTap = true
	return agent.SetNetwork(ctx, m)
}
