package ipc

// Bodies of the network messages (0x05xx, and MsgInstanceSetNetwork),
// which the agent serves. A listener or connection is made inside the
// sandbox's network. With WantFD, on a connection that carries
// descriptors, the answer brings the socket itself; otherwise a listener
// is a handle, and a connection is the byte stream of the call's own
// connection, which the caller takes over once the answer arrives.

// ListenReq is the request of MsgNetListen and MsgNetListenPacket. A unix
// socket's address is a sandbox path.
type ListenReq struct {
	Network, Addr string
	WantFD        bool
}

// Encode implements Msg.
func (m *ListenReq) Encode(e *Encoder) {
	e.String(m.Network)
	e.String(m.Addr)
	e.Bool(m.WantFD)
}

// Decode implements Msg.
func (m *ListenReq) Decode(d *Decoder) (err error) {
	if m.Network, err = d.String(); err != nil {
		return err
	}
	if m.Addr, err = d.String(); err != nil {
		return err
	}
	m.WantFD, err = d.Bool()
	return err
}

// ListenAns is MsgNetListen's answer: the listener's handle (0 when the
// socket came with the answer) and its address.
type ListenAns struct {
	Handle uint64
	Addr   string
}

// Encode implements Msg.
func (m *ListenAns) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.String(m.Addr)
}

// Decode implements Msg.
func (m *ListenAns) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.Addr, err = d.String()
	return err
}

// DialReq is MsgNetDial's request.
type DialReq struct {
	Network, Addr string
	TimeoutNs     int64 // bounds the connect; 0: none
	WantFD        bool  // optional
}

// Encode implements Msg.
func (m *DialReq) Encode(e *Encoder) {
	e.String(m.Network)
	e.String(m.Addr)
	e.Int64(m.TimeoutNs)
	e.Bool(m.WantFD)
}

// Decode implements Msg.
func (m *DialReq) Decode(d *Decoder) (err error) {
	if m.Network, err = d.String(); err != nil {
		return err
	}
	if m.Addr, err = d.String(); err != nil {
		return err
	}
	if m.TimeoutNs, err = d.Int64(); err != nil {
		return err
	}
	m.WantFD, err = optBool(d)
	return err
}

// ConnAns is the addresses of a connection in the sandbox: the answer of
// MsgNetDial and MsgListenerAccept.
type ConnAns struct {
	Local, Remote string
}

// Encode implements Msg.
func (m *ConnAns) Encode(e *Encoder) {
	e.String(m.Local)
	e.String(m.Remote)
}

// Decode implements Msg.
func (m *ConnAns) Decode(d *Decoder) (err error) {
	if m.Local, err = d.String(); err != nil {
		return err
	}
	m.Remote, err = d.String()
	return err
}

// NetworkReq is MsgInstanceSetNetwork's request: the sandbox's egress
// device. With Enabled false only Ifname counts: the device goes down.
type NetworkReq struct {
	Enabled   bool
	Ifname    string
	Addr      string // the sandbox's address, as a CIDR prefix
	Gateway   string
	DNS       string // "" leaves /etc/resolv.conf alone
	MTU       uint32
	CreateTap bool // the agent creates the device and sends it
}

// Encode implements Msg.
func (m *NetworkReq) Encode(e *Encoder) {
	e.Bool(m.Enabled)
	e.String(m.Ifname)
	e.String(m.Addr)
	e.String(m.Gateway)
	e.String(m.DNS)
	e.Uint32(m.MTU)
	e.Bool(m.CreateTap)
}

// Decode implements Msg.
func (m *NetworkReq) Decode(d *Decoder) (err error) {
	if m.Enabled, err = d.Bool(); err != nil {
		return err
	}
	if m.Ifname, err = d.String(); err != nil {
		return err
	}
	if m.Addr, err = d.String(); err != nil {
		return err
	}
	if m.Gateway, err = d.String(); err != nil {
		return err
	}
	if m.DNS, err = d.String(); err != nil {
		return err
	}
	if m.MTU, err = d.Uint32(); err != nil {
		return err
	}
	m.CreateTap, err = d.Bool()
	return err
}

// BoolAns carries one bool: whether an instance runs, whether a device
// was created.
type BoolAns struct {
	Value bool
}

// Encode implements Msg.
func (m *BoolAns) Encode(e *Encoder) { e.Bool(m.Value) }

// Decode implements Msg.
func (m *BoolAns) Decode(d *Decoder) (err error) {
	m.Value, err = d.Bool()
	return err
}
