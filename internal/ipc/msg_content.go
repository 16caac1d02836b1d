package ipc

// Bodies of the network helper's messages that bring an image by content:
// the client asks which layers the helper's store lacks (MsgRemoteLayers),
// streams each of those as a plain layer tar (MsgRemotePutLayer), which
// the helper checks against its diffID, then names the image by its config
// (MsgRemoteImage), whose digest is the config's. Nothing in them names a
// path of either host.

// LayersReq is MsgRemoteLayers' request: layers by diffID.
type LayersReq struct {
	DiffIDs []string // "sha256:..."
}

// Encode implements Msg.
func (m *LayersReq) Encode(e *Encoder) { e.StringSlice(m.DiffIDs) }

// Decode implements Msg.
func (m *LayersReq) Decode(d *Decoder) (err error) {
	m.DiffIDs, err = d.StringSlice()
	return err
}

// LayersAns is MsgRemoteLayers' answer: the asked layers the helper's
// store does not hold, in the order asked.
type LayersAns struct {
	Missing []string
}

// Encode implements Msg.
func (m *LayersAns) Encode(e *Encoder) { e.StringSlice(m.Missing) }

// Decode implements Msg.
func (m *LayersAns) Decode(d *Decoder) (err error) {
	m.Missing, err = d.StringSlice()
	return err
}

// PutLayerReq is MsgRemotePutLayer's request: after the success answer
// the connection carries Size bytes, the layer's uncompressed tar, whose
// sha256 must be DiffID; then the helper writes the status frame
// (WriteStatus): the layer is in its store, or why not.
type PutLayerReq struct {
	DiffID string
	Size   uint64
}

// Encode implements Msg.
func (m *PutLayerReq) Encode(e *Encoder) {
	e.String(m.DiffID)
	e.Uint64(m.Size)
}

// Decode implements Msg.
func (m *PutLayerReq) Decode(d *Decoder) (err error) {
	if m.DiffID, err = d.String(); err != nil {
		return err
	}
	m.Size, err = d.Uint64()
	return err
}

// ImageReq is MsgRemoteImage's request: an image whose layers (the
// config's rootfs diff_ids) are all in the helper's store. Its answer is
// a PullAns whose Digest is the config's sha256 and whose Ref is empty.
type ImageReq struct {
	Config []byte // the OCI config blob
}

// Encode implements Msg.
func (m *ImageReq) Encode(e *Encoder) { e.WriteBytes(m.Config) }

// Decode implements Msg.
func (m *ImageReq) Decode(d *Decoder) (err error) {
	m.Config, err = d.Bytes()
	return err
}
