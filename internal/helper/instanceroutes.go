package helper

import (
	"fmt"
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// routeInstance routes on mux the messages that ask about or adjust a
// running instance (Wait, ID, IsRunning, Stats, SetTimeout), each served
// on the instance get returns; get's error (no instance yet, none
// attached) is the answer before there is one. The per-sandbox helper and
// a network helper's session serve them alike.
func routeInstance(mux *ipc.Mux, get func() (*engine.Instance, error)) {
	ipc.Route(mux, ipc.MsgInstanceWait, func(req *ipc.Request, _ *ipc.Empty) (ipc.Empty, error) {
		inst, err := get()
		if err != nil {
			return ipc.Empty{}, err
		}
		select {
		case <-inst.Done():
		case <-req.Context().Done():
			return ipc.Empty{}, req.Context().Err()
		}
		return ipc.Empty{}, inst.Err()
	})
	ipc.Route(mux, ipc.MsgInstanceID, func(*ipc.Request, *ipc.Empty) (ipc.StringAns, error) {
		inst, err := get()
		if err != nil {
			return ipc.StringAns{}, err
		}
		return ipc.StringAns{Value: inst.ID()}, nil
	})
	ipc.Route(mux, ipc.MsgInstanceIsRunning, func(*ipc.Request, *ipc.Empty) (ipc.BoolAns, error) {
		inst, err := get()
		if err != nil {
			return ipc.BoolAns{}, err
		}
		select {
		case <-inst.Done():
			return ipc.BoolAns{Value: false}, nil
		default:
			return ipc.BoolAns{Value: true}, nil
		}
	})
	ipc.Route(mux, ipc.MsgInstanceStats, func(*ipc.Request, *ipc.Empty) (ipc.StatsAns, error) {
		inst, err := get()
		if err != nil {
			return ipc.StatsAns{}, err
		}
		n := 0
		if c, ok := inst.Sandbox().(hv.OOMCounter); ok {
			n = c.OOMKills()
		}
		return ipc.StatsAns{OOMKills: uint32(n)}, nil
	})
	ipc.Route(mux, ipc.MsgInstanceSetTimeout, func(_ *ipc.Request, m *ipc.TimeoutReq) (ipc.Empty, error) {
		inst, err := get()
		if err != nil {
			return ipc.Empty{}, err
		}
		if m.Ns <= 0 {
			return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("timeout of %d ns", m.Ns)}
		}
		return ipc.Empty{}, inst.SetTimeout(time.Duration(m.Ns))
	})
}
