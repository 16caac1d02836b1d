package helper

import (
	"context"
	"errors"
	"net"
	"os"

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
	inst, err := s.engine()
	if err != nil {
		return ipc.Empty{}, err
	}
	if !m.Enabled {
		return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: "MsgRemoteTap creates a device: Enabled must be set"}
	}
	link, err := openEgressLink(req.Context(), inst, *m)
	if err != nil {
		return ipc.Empty{}, err
	}
	req.HijackWith(func(conn net.Conn) {
		relayDone := make(chan struct{})
		go func() {
			ipc.RelayLinkFrames(link, conn)
			close(relayDone)
		}()
		go func() {
			select {
			case <-inst.Done():
				conn.Close() // ends the relay, which closes the device
			case <-relayDone:
			}
		}()
	})
	return ipc.Empty{}, nil
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
