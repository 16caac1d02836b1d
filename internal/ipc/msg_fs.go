package ipc

import (
	"fmt"
	"io/fs"
	"strings"
)

// Bodies of the file system messages (0x02xx), which the agent serves.
// Paths are sandbox paths, resolved by the agent inside the sandbox's
// root; a relative path is relative to "/". Fields marked optional extend
// a seed layout: Decode reads them when present, Encode always writes them.

// Empty is the body of a request or answer that carries nothing.
type Empty struct{}

// Encode implements Msg: it writes nothing.
func (*Empty) Encode(*Encoder) {}

// Decode implements Msg: it reads nothing.
func (*Empty) Decode(*Decoder) error { return nil }

// PathReq names one path.
type PathReq struct {
	Path string
}

// Encode implements Msg.
func (m *PathReq) Encode(e *Encoder) { e.String(m.Path) }

// Decode implements Msg.
func (m *PathReq) Decode(d *Decoder) (err error) {
	m.Path, err = d.String()
	return err
}

// PathModeReq names a path and a mode: the permissions of a new directory,
// or the mode Chmod sets.
type PathModeReq struct {
	Path string
	Mode fs.FileMode // as a uint32
}

// Encode implements Msg.
func (m *PathModeReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.Uint32(uint32(m.Mode))
}

// Decode implements Msg.
func (m *PathModeReq) Decode(d *Decoder) (err error) {
	if m.Path, err = d.String(); err != nil {
		return err
	}
	mode, err := d.Uint32()
	m.Mode = fs.FileMode(mode)
	return err
}

// PathPairReq names two paths: Rename's old and new, or Symlink's target
// (stored as given) and the link.
type PathPairReq struct {
	Old, New string
}

// Encode implements Msg.
func (m *PathPairReq) Encode(e *Encoder) {
	e.String(m.Old)
	e.String(m.New)
}

// Decode implements Msg.
func (m *PathPairReq) Decode(d *Decoder) (err error) {
	if m.Old, err = d.String(); err != nil {
		return err
	}
	m.New, err = d.String()
	return err
}

// WriteFileReq is MsgFsWriteFile's request: the whole content of a file.
type WriteFileReq struct {
	Path string
	// Data aliases the decoded bytes (it may be large); copy what must
	// outlive the request.
	Data []byte
	Perm fs.FileMode // as a uint32
}

// Encode implements Msg.
func (m *WriteFileReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.WriteBytes(m.Data)
	e.Uint32(uint32(m.Perm))
}

// Decode implements Msg.
func (m *WriteFileReq) Decode(d *Decoder) (err error) {
	if m.Path, err = d.String(); err != nil {
		return err
	}
	if m.Data, err = d.BorrowBytes(); err != nil {
		return err
	}
	perm, err := d.Uint32()
	m.Perm = fs.FileMode(perm)
	return err
}

// OpenFileReq is MsgFsOpenFile's request, as os.OpenFile takes it.
type OpenFileReq struct {
	Path   string
	Flag   int32       // os.O_* flags
	Perm   fs.FileMode // as a uint32; for a file it creates
	WantFD bool        // answer with the descriptor where the connection can carry it
}

// Encode implements Msg.
func (m *OpenFileReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.Int32(m.Flag)
	e.Uint32(uint32(m.Perm))
	e.Bool(m.WantFD)
}

// Decode implements Msg.
func (m *OpenFileReq) Decode(d *Decoder) (err error) {
	if m.Path, err = d.String(); err != nil {
		return err
	}
	if m.Flag, err = d.Int32(); err != nil {
		return err
	}
	perm, err := d.Uint32()
	if err != nil {
		return err
	}
	m.Perm = fs.FileMode(perm)
	m.WantFD, err = d.Bool()
	return err
}

// OpenReq is the request of MsgFsOpen and MsgFsCreate.
type OpenReq struct {
	Path   string
	WantFD bool // optional
}

// Encode implements Msg.
func (m *OpenReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.Bool(m.WantFD)
}

// Decode implements Msg.
func (m *OpenReq) Decode(d *Decoder) (err error) {
	if m.Path, err = d.String(); err != nil {
		return err
	}
	m.WantFD, err = optBool(d)
	return err
}

// ChownReq is MsgFsChown's request; -1 leaves an id unchanged.
type ChownReq struct {
	Path     string
	Uid, Gid int32
	NoFollow bool // optional: change a final symlink itself (Lchown)
}

// Encode implements Msg.
func (m *ChownReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.Int32(m.Uid)
	e.Int32(m.Gid)
	e.Bool(m.NoFollow)
}

// Decode implements Msg.
func (m *ChownReq) Decode(d *Decoder) (err error) {
	if m.Path, err = d.String(); err != nil {
		return err
	}
	if m.Uid, err = d.Int32(); err != nil {
		return err
	}
	if m.Gid, err = d.Int32(); err != nil {
		return err
	}
	m.NoFollow, err = optBool(d)
	return err
}

// Flags of a ChtimesReq.
const (
	ChtimesKeepAtime uint8 = 1 // leave the access time as it is
	ChtimesKeepMtime uint8 = 2 // leave the modification time as it is
)

// ChtimesReq is MsgFsChtimes's request; times are Unix nanoseconds.
type ChtimesReq struct {
	Path             string
	AtimeNs, MtimeNs int64
	Flags            uint8 // optional: ChtimesKeepAtime, ChtimesKeepMtime
}

// Encode implements Msg.
func (m *ChtimesReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.Int64(m.AtimeNs)
	e.Int64(m.MtimeNs)
	e.Uint8(m.Flags)
}

// Decode implements Msg.
func (m *ChtimesReq) Decode(d *Decoder) (err error) {
	if m.Path, err = d.String(); err != nil {
		return err
	}
	if m.AtimeNs, err = d.Int64(); err != nil {
		return err
	}
	if m.MtimeNs, err = d.Int64(); err != nil {
		return err
	}
	m.Flags, err = optUint8(d)
	return err
}

// StatAns is a file's metadata: the seed's FileInfo and the rest of it.
type StatAns struct {
	Info FileInfo
	Stat Stat
}

// Encode implements Msg.
func (m *StatAns) Encode(e *Encoder) {
	EncodeFileInfo(e, m.Info)
	m.Stat.Encode(e)
}

// Decode implements Msg.
func (m *StatAns) Decode(d *Decoder) (err error) {
	if m.Info, err = DecodeFileInfo(d); err != nil {
		return err
	}
	return m.Stat.Decode(d)
}

// OpenAns answers an open: the handle of the file in the agent for the
// MsgFile* messages, or 0 when the file itself came with the answer, and
// its metadata.
type OpenAns struct {
	Handle uint64
	Info   FileInfo
	Stat   Stat
}

// Encode implements Msg.
func (m *OpenAns) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	EncodeFileInfo(e, m.Info)
	m.Stat.Encode(e)
}

// Decode implements Msg.
func (m *OpenAns) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	if m.Info, err = DecodeFileInfo(d); err != nil {
		return err
	}
	return m.Stat.Decode(d)
}

// BytesAns carries data: a file's content, or what a read returned.
type BytesAns struct {
	// Data aliases the decoded bytes; copy what must outlive them.
	Data []byte
}

// Encode implements Msg.
func (m *BytesAns) Encode(e *Encoder) { e.WriteBytes(m.Data) }

// Decode implements Msg.
func (m *BytesAns) Decode(d *Decoder) (err error) {
	m.Data, err = d.BorrowBytes()
	return err
}

// StringAns carries one string: a symlink's target, a file's name, an
// address, an id.
type StringAns struct {
	Value string
}

// Encode implements Msg.
func (m *StringAns) Encode(e *Encoder) { e.String(m.Value) }

// Decode implements Msg.
func (m *StringAns) Decode(d *Decoder) (err error) {
	m.Value, err = d.String()
	return err
}

// dirEntrySize is the encoded size of a DirEntry with an empty name.
const dirEntrySize = 4 + 1 + 4

// DirAns lists directory entries: a uint32 count, then each DirEntry.
type DirAns struct {
	Entries []DirEntry
}

// Encode implements Msg.
func (m *DirAns) Encode(e *Encoder) {
	e.Uint32(uint32(len(m.Entries)))
	for _, de := range m.Entries {
		EncodeDirEntry(e, de)
	}
}

// Decode implements Msg.
func (m *DirAns) Decode(d *Decoder) error {
	n, err := d.count(dirEntrySize)
	if err != nil {
		return err
	}
	m.Entries = make([]DirEntry, n)
	for i := range m.Entries {
		if m.Entries[i], err = DecodeDirEntry(d); err != nil {
			return err
		}
		if name := m.Entries[i].Name; !isEntryName(name) {
			return fmt.Errorf("directory entry %q is not a name within the directory", name)
		}
	}
	return nil
}

// isEntryName reports whether name can be a directory's entry, as
// os.ReadDir gives them and io/fs promises: one path element, not "." or
// "..". A peer that names an entry "../x" would lead a caller that joins
// it to its directory out of it.
func isEntryName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// optBool reads a bool that a seed layout lacks: false when the body ends
// before it.
func optBool(d *Decoder) (bool, error) {
	if d.Remaining() == 0 {
		return false, nil
	}
	return d.Bool()
}

// optUint8 reads a uint8 that a seed layout lacks: 0 when the body ends
// before it.
func optUint8(d *Decoder) (uint8, error) {
	if d.Remaining() == 0 {
		return 0, nil
	}
	return d.Uint8()
}

// Stat is the part of a file's metadata the seed's FileInfo lacks; it
// follows the FileInfo in stat answers (extension). Ids are as the sandbox
// sees them; times are Unix nanoseconds. It encodes as Uid, Gid (u32),
// Nlink, Ino, Dev, Rdev (u64), Blocks, AtimeNs, MtimeNs, CtimeNs (i64).
type Stat struct {
	Uid, Gid                  uint32
	Nlink                     uint64
	Ino, Dev, Rdev            uint64
	Blocks                    int64
	AtimeNs, MtimeNs, CtimeNs int64
}

// Encode implements Msg.
func (s *Stat) Encode(e *Encoder) {
	e.Uint32(s.Uid)
	e.Uint32(s.Gid)
	e.Uint64(s.Nlink)
	e.Uint64(s.Ino)
	e.Uint64(s.Dev)
	e.Uint64(s.Rdev)
	e.Int64(s.Blocks)
	e.Int64(s.AtimeNs)
	e.Int64(s.MtimeNs)
	e.Int64(s.CtimeNs)
}

// statSize is the encoded size of a Stat.
const statSize = 4 + 4 + 8*8

// Decode implements Msg.
func (s *Stat) Decode(d *Decoder) error {
	b, err := d.take(statSize)
	if err != nil {
		return err
	}
	d = NewDecoder(b) // every read below fits
	s.Uid, _ = d.Uint32()
	s.Gid, _ = d.Uint32()
	s.Nlink, _ = d.Uint64()
	s.Ino, _ = d.Uint64()
	s.Dev, _ = d.Uint64()
	s.Rdev, _ = d.Uint64()
	s.Blocks, _ = d.Int64()
	s.AtimeNs, _ = d.Int64()
	s.MtimeNs, _ = d.Int64()
	s.CtimeNs, _ = d.Int64()
	return nil
}
