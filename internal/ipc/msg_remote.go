package ipc

// Bodies of the network helper's own messages (cc-helper serve; see
// table.go). A client of a network helper never names a path of the
// helper's host except a mount the helper's policy allows: images travel
// by reference, and the helper keeps its own store.

// InstanceAttachReq is MsgRemoteAttach's request: the instance the connection
// serves from now on (its lifecycle messages and the agent's).
type InstanceAttachReq struct {
	ID string
}

// Encode implements Msg.
func (m *InstanceAttachReq) Encode(e *Encoder) { e.String(m.ID) }

// Decode implements Msg.
func (m *InstanceAttachReq) Decode(d *Decoder) (err error) {
	m.ID, err = d.String()
	return err
}

// PullReq is MsgRemotePull's request, and how MsgRemoteNew gets its
// image: a reference the helper pulls into its own store, with the pull
// options that can cross the wire (credentials are the helper's own).
type PullReq struct {
	Ref       string // "busybox", "registry:5000/x@sha256:..."
	Platform  string // "os/arch[/variant]"; "": the helper's
	Policy    uint8  // image.PullPolicy; 0: if not present
	PlainHTTP bool   // allow plain HTTP to the registry
}

// Encode implements Msg.
func (m *PullReq) Encode(e *Encoder) {
	e.String(m.Ref)
	e.String(m.Platform)
	e.Uint8(m.Policy)
	e.Bool(m.PlainHTTP)
}

// Decode implements Msg.
func (m *PullReq) Decode(d *Decoder) (err error) {
	if m.Ref, err = d.String(); err != nil {
		return err
	}
	if m.Platform, err = d.String(); err != nil {
		return err
	}
	if m.Policy, err = d.Uint8(); err != nil {
		return err
	}
	m.PlainHTTP, err = d.Bool()
	return err
}

// PullAns is MsgRemotePull's answer: the image as the helper's store
// holds it.
type PullAns struct {
	Digest string   // "sha256:..."
	Ref    string   // the reference, fully qualified
	Config []byte   // the OCI config blob
	Layers []string // diffIDs, lowest first
}

// Encode implements Msg.
func (m *PullAns) Encode(e *Encoder) {
	e.String(m.Digest)
	e.String(m.Ref)
	e.WriteBytes(m.Config)
	e.StringSlice(m.Layers)
}

// Decode implements Msg.
func (m *PullAns) Decode(d *Decoder) (err error) {
	if m.Digest, err = d.String(); err != nil {
		return err
	}
	if m.Ref, err = d.String(); err != nil {
		return err
	}
	if m.Config, err = d.Bytes(); err != nil {
		return err
	}
	m.Layers, err = d.StringSlice()
	return err
}

// RemoteMount is a helper-side path a client asks to see in its sandbox;
// the helper refuses it unless its policy allows the path.
type RemoteMount struct {
	HostPath string // on the helper's host
	Path     string // inside the sandbox
	Writable bool
}

// RemoteNewReq is MsgRemoteNew's request: the image (by Digest when the
// helper's store has it, else pulled as Image says) and the sandbox's
// settings.
type RemoteNewReq struct {
	Image     PullReq
	Digest    string // the image wanted; "" with an empty Image.Ref: scratch
	Backend   string // "" (the helper's default), "ns", "vm", "gvisor"
	Hostname  string
	MemoryMB  uint64
	CPUsMilli uint32
	PidsMax   int64
	NoFile    uint64
	DiskMB    uint64
	TimeoutNs int64
	Mounts    []RemoteMount
	Network   bool // the sandbox will have egress (MsgRemoteTap): a VM gets its NIC at start
}

// Encode implements Msg.
func (m *RemoteNewReq) Encode(e *Encoder) {
	m.Image.Encode(e)
	e.String(m.Digest)
	e.String(m.Backend)
	e.String(m.Hostname)
	e.Uint64(m.MemoryMB)
	e.Uint32(m.CPUsMilli)
	e.Int64(m.PidsMax)
	e.Uint64(m.NoFile)
	e.Uint64(m.DiskMB)
	e.Int64(m.TimeoutNs)
	e.Uint32(uint32(len(m.Mounts)))
	for _, mt := range m.Mounts {
		e.String(mt.HostPath)
		e.String(mt.Path)
		e.Bool(mt.Writable)
	}
	e.Bool(m.Network)
}

// Decode implements Msg.
func (m *RemoteNewReq) Decode(d *Decoder) (err error) {
	if err = m.Image.Decode(d); err != nil {
		return err
	}
	for _, s := range []*string{&m.Digest, &m.Backend, &m.Hostname} {
		if *s, err = d.String(); err != nil {
			return err
		}
	}
	if m.MemoryMB, err = d.Uint64(); err != nil {
		return err
	}
	if m.CPUsMilli, err = d.Uint32(); err != nil {
		return err
	}
	if m.PidsMax, err = d.Int64(); err != nil {
		return err
	}
	if m.NoFile, err = d.Uint64(); err != nil {
		return err
	}
	if m.DiskMB, err = d.Uint64(); err != nil {
		return err
	}
	if m.TimeoutNs, err = d.Int64(); err != nil {
		return err
	}
	n, err := d.count(9) // two empty strings and a bool
	if err != nil {
		return err
	}
	m.Mounts = nil
	for range n {
		var mt RemoteMount
		if mt.HostPath, err = d.String(); err != nil {
			return err
		}
		if mt.Path, err = d.String(); err != nil {
			return err
		}
		if mt.Writable, err = d.Bool(); err != nil {
			return err
		}
		m.Mounts = append(m.Mounts, mt)
	}
	m.Network, err = d.Bool()
	return err
}

// RemoteNewAns is MsgRemoteNew's answer: the new instance's id (which
// MsgRemoteAttach names) and its image's config, for the client's
// defaults (environment, user, working directory).
type RemoteNewAns struct {
	ID     string
	Config []byte // the OCI config blob; empty for scratch
}

// Encode implements Msg.
func (m *RemoteNewAns) Encode(e *Encoder) {
	e.String(m.ID)
	e.WriteBytes(m.Config)
}

// Decode implements Msg.
func (m *RemoteNewAns) Decode(d *Decoder) (err error) {
	if m.ID, err = d.String(); err != nil {
		return err
	}
	m.Config, err = d.Bytes()
	return err
}

// CapacityAns is MsgRemoteCapacity's answer: what the asking client may
// still start on the helper, and the helper's connection counters.
type CapacityAns struct {
	MaxInstances uint32 // the helper's capacity
	Running      uint32 // sandboxes running on it, all clients
	Free         uint32 // how many more the asking client may start now
	MemoryFreeMB int64  // memory the asking client may still ask for; -1: no limit
	Sessions     uint64 // connections that completed the TLS handshake
	Refused      uint64 // connections refused before any message was read
	Messages     uint64 // messages decoded, all connections
}

// Encode implements Msg.
func (m *CapacityAns) Encode(e *Encoder) {
	e.Uint32(m.MaxInstances)
	e.Uint32(m.Running)
	e.Uint32(m.Free)
	e.Int64(m.MemoryFreeMB)
	e.Uint64(m.Sessions)
	e.Uint64(m.Refused)
	e.Uint64(m.Messages)
}

// Decode implements Msg.
func (m *CapacityAns) Decode(d *Decoder) (err error) {
	for _, v := range []*uint32{&m.MaxInstances, &m.Running, &m.Free} {
		if *v, err = d.Uint32(); err != nil {
			return err
		}
	}
	if m.MemoryFreeMB, err = d.Int64(); err != nil {
		return err
	}
	for _, v := range []*uint64{&m.Sessions, &m.Refused, &m.Messages} {
		if *v, err = d.Uint64(); err != nil {
			return err
		}
	}
	return nil
}

// ReadStreamAns is MsgFsReadStream's answer: the file's size when it was
// opened. Size bytes follow on the connection (zeros after a file that
// shrank meanwhile, whose status is then an error), then the agent's
// status frame (see WriteStatus). The agent may be hostile: a reader
// must not trust Size to allocate.
type ReadStreamAns struct {
	Size uint64
}

// Encode implements Msg.
func (m *ReadStreamAns) Encode(e *Encoder) { e.Uint64(m.Size) }

// Decode implements Msg.
func (m *ReadStreamAns) Decode(d *Decoder) (err error) {
	m.Size, err = d.Uint64()
	return err
}

// WriteStreamReq is MsgFsWriteStream's request: after the success answer
// the client sends Size bytes on the connection, which the agent writes
// to the file (created or truncated, as os.WriteFile does), and the agent
// answers with a status frame (see WriteStatus).
type WriteStreamReq struct {
	Path string
	Perm uint32 // fs.FileMode
	Size uint64
}

// Encode implements Msg.
func (m *WriteStreamReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.Uint32(m.Perm)
	e.Uint64(m.Size)
}

// Decode implements Msg.
func (m *WriteStreamReq) Decode(d *Decoder) (err error) {
	if m.Path, err = d.String(); err != nil {
		return err
	}
	if m.Perm, err = d.Uint32(); err != nil {
		return err
	}
	m.Size, err = d.Uint64()
	return err
}
