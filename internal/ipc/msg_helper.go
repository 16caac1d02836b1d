package ipc

// Bodies of the messages a helper serves itself (see table.go), and of the
// handshake every server answers.

// InstanceSpec is the part of a new instance's description the seed's
// InstanceOptions lacks (extension; it follows InstanceOptions in
// MsgInstanceNew). It encodes field by field. The instance's mounts travel in InstanceOptions.Mounts,
// with the sandbox path as Tag.
type InstanceSpec struct {
	Layers    []string // read-only layer directories, lowest first
	Hostname  string
	StateRoot string // where instance state goes (beside the layer store)
	Backend   string // "" (default), "ns" or "vm"
	CPUsMilli uint32 // CPU limit in thousandths of a CPU; 0: none
	PidsMax   int64
	NoFile    uint64 // open files per process; 0: the host's limit
	DiskMB    uint64 // the writable layer's size; 0: no limit
	Kernel    string // the VM backend's kernel, "" for its default
	CacheDir  string // the SDK's cache directory
	WantFD    bool   // the client can receive descriptors (the channel)
	Network   bool   // the sandbox may get egress (hv.Config.Network)
}

// Encode implements Msg.
func (s *InstanceSpec) Encode(enc *Encoder) {
	enc.StringSlice(s.Layers)
	enc.String(s.Hostname)
	enc.String(s.StateRoot)
	enc.String(s.Backend)
	enc.Uint32(s.CPUsMilli)
	enc.Int64(s.PidsMax)
	enc.Uint64(s.NoFile)
	enc.Uint64(s.DiskMB)
	enc.String(s.Kernel)
	enc.String(s.CacheDir)
	enc.Bool(s.WantFD)
	enc.Bool(s.Network)
}

// Decode implements Msg.
func (s *InstanceSpec) Decode(dec *Decoder) (err error) {
	if s.Layers, err = dec.StringSlice(); err != nil {
		return err
	}
	if s.Hostname, err = dec.String(); err != nil {
		return err
	}
	if s.StateRoot, err = dec.String(); err != nil {
		return err
	}
	if s.Backend, err = dec.String(); err != nil {
		return err
	}
	if s.CPUsMilli, err = dec.Uint32(); err != nil {
		return err
	}
	if s.PidsMax, err = dec.Int64(); err != nil {
		return err
	}
	if s.NoFile, err = dec.Uint64(); err != nil {
		return err
	}
	if s.DiskMB, err = dec.Uint64(); err != nil {
		return err
	}
	if s.Kernel, err = dec.String(); err != nil {
		return err
	}
	if s.CacheDir, err = dec.String(); err != nil {
		return err
	}
	if s.WantFD, err = dec.Bool(); err != nil {
		return err
	}
	s.Network, err = dec.Bool()
	return err
}

// NewReq is MsgInstanceNew's request: the seed's InstanceOptions, then
// the rest of the instance's description. The instance's mounts travel in
// Options.Mounts, with the sandbox path as Tag.
type NewReq struct {
	Options InstanceOptions
	Spec    InstanceSpec
}

// Encode implements Msg.
func (m *NewReq) Encode(e *Encoder) {
	EncodeInstanceOptions(e, m.Options)
	m.Spec.Encode(e)
}

// Decode implements Msg.
func (m *NewReq) Decode(d *Decoder) (err error) {
	if m.Options, err = DecodeInstanceOptions(d); err != nil {
		return err
	}
	return m.Spec.Decode(d)
}

// NewAns is MsgInstanceNew's answer. With Channel, an ipc channel end (see
// NewChannelDialer) to the instance's agent comes with it.
type NewAns struct {
	ID        string
	Pid       int32 // the agent's host pid
	PassesFDs bool  // the backend passes descriptors
	Channel   bool
}

// Encode implements Msg.
func (m *NewAns) Encode(e *Encoder) {
	e.String(m.ID)
	e.Int32(m.Pid)
	e.Bool(m.PassesFDs)
	e.Bool(m.Channel)
}

// Decode implements Msg.
func (m *NewAns) Decode(d *Decoder) (err error) {
	if m.ID, err = d.String(); err != nil {
		return err
	}
	if m.Pid, err = d.Int32(); err != nil {
		return err
	}
	if m.PassesFDs, err = d.Bool(); err != nil {
		return err
	}
	m.Channel, err = d.Bool()
	return err
}

// LinkReq is MsgInstanceOpenLink's request: the egress device's name.
type LinkReq struct {
	Ifname string
}

// Encode implements Msg.
func (m *LinkReq) Encode(e *Encoder) { e.String(m.Ifname) }

// Decode implements Msg.
func (m *LinkReq) Decode(d *Decoder) (err error) {
	m.Ifname, err = d.String()
	return err
}

// StatsAns is MsgInstanceStats's answer.
type StatsAns struct {
	OOMKills uint32 // processes the kernel killed for memory
}

// Encode implements Msg.
func (m *StatsAns) Encode(e *Encoder) { e.Uint32(m.OOMKills) }

// Decode implements Msg.
func (m *StatsAns) Decode(d *Decoder) (err error) {
	m.OOMKills, err = d.Uint32()
	return err
}

// TimeoutReq is MsgInstanceSetTimeout's request.
type TimeoutReq struct {
	Ns int64 // stop the sandbox this long from now; must be > 0
}

// Encode implements Msg.
func (m *TimeoutReq) Encode(e *Encoder) { e.Int64(m.Ns) }

// Decode implements Msg.
func (m *TimeoutReq) Decode(d *Decoder) (err error) {
	m.Ns, err = d.Int64()
	return err
}

// SnapshotReq is MsgInstanceSnapshot's request: the seed's
// SnapshotOptions (CacheDir names the store), then what the snapshot
// stands on, as the JSON of the SDK's snapshot parent.
type SnapshotReq struct {
	Options SnapshotOptions
	Parent  []byte
}

// Encode implements Msg.
func (m *SnapshotReq) Encode(e *Encoder) {
	EncodeSnapshotOptions(e, m.Options)
	e.WriteBytes(m.Parent)
}

// Decode implements Msg.
func (m *SnapshotReq) Decode(d *Decoder) (err error) {
	if m.Options, err = DecodeSnapshotOptions(d); err != nil {
		return err
	}
	m.Parent, err = d.Bytes()
	return err
}

// SnapshotAns is MsgInstanceSnapshot's answer: the new snapshot's record,
// as JSON.
type SnapshotAns struct {
	Info []byte
}

// Encode implements Msg.
func (m *SnapshotAns) Encode(e *Encoder) { e.WriteBytes(m.Info) }

// Decode implements Msg.
func (m *SnapshotAns) Decode(d *Decoder) (err error) {
	m.Info, err = d.Bytes()
	return err
}

// HelloReq is MsgHello's request.
type HelloReq struct {
	Magic   string // HelloMagic
	Version uint32 // ProtocolVersion
}

// Encode implements Msg.
func (m *HelloReq) Encode(e *Encoder) {
	e.String(m.Magic)
	e.Uint32(m.Version)
}

// Decode implements Msg.
func (m *HelloReq) Decode(d *Decoder) (err error) {
	if m.Magic, err = d.String(); err != nil {
		return err
	}
	m.Version, err = d.Uint32()
	return err
}

// HelloAns is MsgHello's answer.
type HelloAns struct {
	Version uint32
	Info    string // the server describing itself
}

// Encode implements Msg.
func (m *HelloAns) Encode(e *Encoder) {
	e.Uint32(m.Version)
	e.String(m.Info)
}

// Decode implements Msg.
func (m *HelloAns) Decode(d *Decoder) (err error) {
	if m.Version, err = d.Uint32(); err != nil {
		return err
	}
	m.Info, err = d.String()
	return err
}
