package ipc

// Messages a helper serves itself (every other message it forwards to the
// agent of its instance). One helper process serves one instance, as in the
// seed's model: the helper exits when its client goes.
//
//	MsgInstanceNew        InstanceOptions, InstanceSpec → id, pid i32, passesFDs bool, channel bool [+ the agent channel]
//	MsgInstanceClose      → (stops the sandbox and removes its state)
//	MsgInstanceWait       → (blocks until the sandbox stops; the answer is the reason it stopped: success after Close)
//	MsgInstanceID         → id
//	MsgInstanceIsRunning  → bool
//	MsgInstanceOpenLink   ifname → created bool [+ the TAP device when created] (false: the agent must create it)
//	MsgInstanceStats      → oomKills u32 (processes the kernel killed for memory)
//	MsgInstanceSetTimeout nanoseconds i64 → (stops the sandbox that long from now, as InstanceOptions.TimeoutSecs does from its start)
//
// With the channel (an ipc channel end, see NewChannelDialer), the client
// opens its own connections to the agent and its file, command and network
// calls bypass the helper; without it, the helper forwards them.
const (
	MsgInstanceOpenLink   uint16 = 0x0108
	MsgInstanceStats      uint16 = 0x0109
	MsgInstanceSetTimeout uint16 = 0x010A
)

// InstanceSpec is the part of a new instance's description the seed's
// InstanceOptions lacks (extension; it follows InstanceOptions in
// MsgInstanceNew). The instance's mounts travel in InstanceOptions.Mounts,
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

// EncodeInstanceSpec encodes an InstanceSpec field by field.
func EncodeInstanceSpec(enc *Encoder, s InstanceSpec) {
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

// DecodeInstanceSpec decodes an InstanceSpec.
func DecodeInstanceSpec(dec *Decoder) (InstanceSpec, error) {
	var s InstanceSpec
	var err error
	if s.Layers, err = dec.StringSlice(); err != nil {
		return s, err
	}
	if s.Hostname, err = dec.String(); err != nil {
		return s, err
	}
	if s.StateRoot, err = dec.String(); err != nil {
		return s, err
	}
	if s.Backend, err = dec.String(); err != nil {
		return s, err
	}
	if s.CPUsMilli, err = dec.Uint32(); err != nil {
		return s, err
	}
	if s.PidsMax, err = dec.Int64(); err != nil {
		return s, err
	}
	if s.NoFile, err = dec.Uint64(); err != nil {
		return s, err
	}
	if s.DiskMB, err = dec.Uint64(); err != nil {
		return s, err
	}
	if s.Kernel, err = dec.String(); err != nil {
		return s, err
	}
	if s.CacheDir, err = dec.String(); err != nil {
		return s, err
	}
	if s.WantFD, err = dec.Bool(); err != nil {
		return s, err
	}
	s.Network, err = dec.Bool()
	return s, err
}
