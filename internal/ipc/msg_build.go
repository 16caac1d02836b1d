package ipc

import (
	"errors"
	"fmt"
	"io"
)

// A build on the network helper (MsgRemoteBuild): the request carries the
// Dockerfile and what the build reads; its context, when it has one,
// was sent before as a layer (MsgRemotePutLayer) and is named by its
// diffID. Once the success answer is out, the connection carries the
// build's progress, one frame per event (BuildEvent, under the message's
// own type), then a frame that ends it: MsgResponse with the success byte
// and a SnapshotAns (the snapshot the build made, in the helper's store),
// or MsgError. The client closing the connection cancels the build.

// BuildReq is MsgRemoteBuild's request.
type BuildReq struct {
	Dockerfile    []byte
	Context       string   // the context layer's diffID; "": no context
	Args          []string // build arguments, "NAME=value"
	Target        string   // the stage to build; "": the last
	NoCache       bool     // run every step again
	NoCacheStages []string // run the steps of these stages again
	Epoch         int64    // SOURCE_DATE_EPOCH, unix seconds, when HasEpoch
	HasEpoch      bool
	Secrets       []BuildSecret
	Pull          PullReq // how FROM images are pulled (Platform, Policy, PlainHTTP; Ref unused)
}

// BuildSecret is a value RUN --mount=type=secret reads.
type BuildSecret struct {
	ID    string
	Value []byte
}

// maxBuildSecrets bounds a request's secrets as decoded.
const maxBuildSecrets = 1024

// Encode implements Msg.
func (m *BuildReq) Encode(e *Encoder) {
	e.WriteBytes(m.Dockerfile)
	e.String(m.Context)
	e.StringSlice(m.Args)
	e.String(m.Target)
	e.Bool(m.NoCache)
	e.StringSlice(m.NoCacheStages)
	e.Int64(m.Epoch)
	e.Bool(m.HasEpoch)
	e.Uint32(uint32(len(m.Secrets)))
	for _, s := range m.Secrets {
		e.String(s.ID)
		e.WriteBytes(s.Value)
	}
	m.Pull.Encode(e)
}

// Decode implements Msg.
func (m *BuildReq) Decode(d *Decoder) (err error) {
	if m.Dockerfile, err = d.Bytes(); err != nil {
		return err
	}
	if m.Context, err = d.String(); err != nil {
		return err
	}
	if m.Args, err = d.StringSlice(); err != nil {
		return err
	}
	if m.Target, err = d.String(); err != nil {
		return err
	}
	if m.NoCache, err = d.Bool(); err != nil {
		return err
	}
	if m.NoCacheStages, err = d.StringSlice(); err != nil {
		return err
	}
	if m.Epoch, err = d.Int64(); err != nil {
		return err
	}
	if m.HasEpoch, err = d.Bool(); err != nil {
		return err
	}
	n, err := d.count(8) // an id's and a value's length prefixes
	if err != nil {
		return err
	}
	if n > maxBuildSecrets {
		return fmt.Errorf("%d build secrets, more than %d", n, maxBuildSecrets)
	}
	m.Secrets = nil
	for range n {
		var s BuildSecret
		if s.ID, err = d.String(); err != nil {
			return err
		}
		if s.Value, err = d.Bytes(); err != nil {
			return err
		}
		m.Secrets = append(m.Secrets, s)
	}
	return m.Pull.Decode(d)
}

// BuildEvent is one event of a build on the network helper, as
// sandbox.BuildProgress reports it.
type BuildEvent struct {
	Step        uint32
	Total       uint32
	Stage       string
	Instruction string
	Cached      bool
	Done        bool
	Output      string
}

// Encode implements Msg.
func (m *BuildEvent) Encode(e *Encoder) {
	e.Uint32(m.Step)
	e.Uint32(m.Total)
	e.String(m.Stage)
	e.String(m.Instruction)
	e.Bool(m.Cached)
	e.Bool(m.Done)
	e.String(m.Output)
}

// Decode implements Msg.
func (m *BuildEvent) Decode(d *Decoder) (err error) {
	if m.Step, err = d.Uint32(); err != nil {
		return err
	}
	if m.Total, err = d.Uint32(); err != nil {
		return err
	}
	if m.Stage, err = d.String(); err != nil {
		return err
	}
	if m.Instruction, err = d.String(); err != nil {
		return err
	}
	if m.Cached, err = d.Bool(); err != nil {
		return err
	}
	if m.Done, err = d.Bool(); err != nil {
		return err
	}
	m.Output, err = d.String()
	return err
}

// MaxBuildEvent bounds a build stream's event frame; the helper cuts a
// longer line of output to fit.
const MaxBuildEvent = 64 << 10

// WriteBuildEvent writes one event frame of a build stream.
func WriteBuildEvent(w io.Writer, ev *BuildEvent) error {
	var e Encoder
	ev.Encode(&e)
	if len(e.Bytes()) > MaxBuildEvent {
		return fmt.Errorf("build event of %d bytes, more than %d", len(e.Bytes()), MaxBuildEvent)
	}
	if err := WriteHeader(w, Header{Type: MsgRemoteBuild, Length: uint32(len(e.Bytes()))}); err != nil {
		return err
	}
	_, err := w.Write(e.Bytes())
	return err
}

// WriteBuildEnd writes the frame that ends a build stream: the snapshot
// ans describes, or err.
func WriteBuildEnd(w io.Writer, ans *SnapshotAns, err error) error {
	if err != nil {
		return WriteStatus(w, err)
	}
	var e Encoder
	e.Uint8(ErrCodeOK)
	ans.Encode(&e)
	if werr := WriteHeader(w, Header{Type: MsgResponse, Length: uint32(len(e.Bytes()))}); werr != nil {
		return werr
	}
	_, werr := w.Write(e.Bytes())
	return werr
}

// ReadBuildFrame reads the next frame of a build stream into ev (an
// event: end is false) or ans (its end: end is true, with the helper's
// error when the build failed). A frame that is neither, too long, or
// malformed, and a stream that breaks, are a *TransportError.
func ReadBuildFrame(r io.Reader, ev *BuildEvent, ans *SnapshotAns) (end bool, err error) {
	h, err := ReadHeader(r)
	if err != nil {
		return false, &TransportError{Op: "read", Err: err}
	}
	limit := uint32(MaxMessageSize)
	if h.Type == MsgRemoteBuild {
		limit = MaxBuildEvent
	}
	if h.Length > limit {
		return false, &TransportError{Op: "read", Err: fmt.Errorf("build frame of %d bytes, more than %d", h.Length, limit)}
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return false, &TransportError{Op: "read", Err: err}
	}
	if h.Type == MsgRemoteBuild {
		if err := ev.Decode(NewDecoder(payload)); err != nil {
			return false, &TransportError{Op: "read", Err: fmt.Errorf("build event: %w", err)}
		}
		return false, nil
	}
	body, err := checkResponse(Message{Type: h.Type, Payload: payload})
	if err != nil {
		return true, err
	}
	if len(body) == 0 {
		return true, &TransportError{Op: "read", Err: errors.New("build end: no success byte")}
	}
	if err := ans.Decode(NewDecoder(body[1:])); err != nil {
		return true, &TransportError{Op: "read", Err: fmt.Errorf("build end: %w", err)}
	}
	return true, nil
}
