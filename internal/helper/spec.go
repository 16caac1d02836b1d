package helper

import (
	"log/slog"
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// The one place where an instance's description, engine.Spec (what the
// public package builds for either runner), meets the seed's terms of
// MsgInstanceNew: the seed's InstanceOptions and this SDK's InstanceSpec.
// What does not travel: Unconfined (benchmarks run in process) and the
// logger (the helper logs where its -v flag says).

// newRequest describes spec to a helper; wantFD asks for the agent's
// channel.
func newRequest(spec engine.Spec, wantFD bool) *ipc.NewReq {
	m := &ipc.NewReq{
		Options: ipc.InstanceOptions{MemoryMB: spec.MemoryMB, CPUs: int(spec.CPUs), TimeoutSecs: spec.Timeout.Seconds()},
		Spec: ipc.InstanceSpec{
			Layers:    spec.Layers,
			Hostname:  spec.Hostname,
			StateRoot: spec.StateRoot,
			CPUsMilli: uint32(spec.CPUs * 1000),
			PidsMax:   spec.PidsMax,
			NoFile:    spec.NoFile,
			DiskMB:    spec.DiskMB,
			Kernel:    spec.Kernel,
			CacheDir:  spec.CacheDir,
			WantFD:    wantFD,
			Network:   spec.Network,
		},
	}
	if spec.Backend != nil {
		m.Spec.Backend = spec.Backend.Name()
	}
	for _, b := range spec.Binds {
		m.Options.Mounts = append(m.Options.Mounts, ipc.MountConfig{Tag: b.Path, HostPath: b.HostPath, Writable: b.Writable})
	}
	return m
}

// engineSpec is the instance a MsgInstanceNew request describes, or an
// error naming a backend this helper does not have.
func engineSpec(m *ipc.NewReq, log *slog.Logger) (engine.Spec, error) {
	backend, err := engine.LookupBackend(m.Spec.Backend)
	if err != nil {
		return engine.Spec{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: err.Error()}
	}
	es := engine.Spec{
		Layers:    m.Spec.Layers,
		Hostname:  m.Spec.Hostname,
		MemoryMB:  m.Options.MemoryMB,
		CPUs:      float64(m.Spec.CPUsMilli) / 1000,
		PidsMax:   m.Spec.PidsMax,
		NoFile:    m.Spec.NoFile,
		DiskMB:    m.Spec.DiskMB,
		Network:   m.Spec.Network,
		Timeout:   time.Duration(m.Options.TimeoutSecs * float64(time.Second)),
		StateRoot: m.Spec.StateRoot,
		Kernel:    m.Spec.Kernel,
		CacheDir:  m.Spec.CacheDir,
		Backend:   backend,
		Logger:    log,
	}
	for _, mc := range m.Options.Mounts {
		es.Binds = append(es.Binds, hv.Bind{HostPath: mc.HostPath, Path: mc.Tag, Writable: mc.Writable})
	}
	return es, nil
}
