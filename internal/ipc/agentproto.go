package ipc

// Extension messages and payloads for the operations the seed names but does
// not lay out (files, commands, the network), spoken by the agent inside
// every sandbox and forwarded by the helper. Each request payload is listed
// as its fields in order; "→" gives what follows the Success byte of the
// answer. Paths are sandbox paths, resolved by the agent inside the
// sandbox's root; a relative path is relative to "/". A request flag
// "wantFD" asks for descriptors: when the connection can carry them the
// answer brings them (see [Message.Files]), otherwise the caller falls back
// to the handle-based messages.
//
//	MsgFsStat, MsgFsLstat       path                      → FileInfo, Stat
//	MsgFsReadFile               path                      → bytes
//	MsgFsWriteFile              path, bytes, perm u32     →
//	MsgFsOpenFile               path, flag i32, perm u32, wantFD bool → handle u64, FileInfo, Stat [+1 file]
//	MsgFsOpen / MsgFsCreate     path, wantFD bool         → as MsgFsOpenFile
//	MsgFsRemove, MsgFsRemoveAll path                      →
//	MsgFsMkdir, MsgFsMkdirAll   path, perm u32            →
//	MsgFsRename, MsgFsSymlink   old, new                  →
//	MsgFsReadlink               path                      → target
//	MsgFsReadDir                path                      → count u32, DirEntry...
//	MsgFsChmod                  path, mode u32            →
//	MsgFsChown                  path, uid i32, gid i32, nofollow bool →
//	MsgFsChtimes                path, atime i64 ns, mtime i64 ns, flags u8 (1: leave atime, 2: leave mtime) →
//
//	MsgFileClose                handle                    →
//	MsgFileRead                 handle, max u32           → bytes (io.EOF error at end of file)
//	MsgFileReadAt               handle, off i64, max u32  → bytes (io.EOF error when short at end)
//	MsgFileWrite                handle, bytes             → n u32
//	MsgFileWriteAt              handle, off i64, bytes    → n u32
//	MsgFileSeek                 handle, off i64, whence i32 → pos i64
//	MsgFileSync                 handle                    →
//	MsgFileTruncate             handle, size i64          →
//	MsgFileStat                 handle                    → FileInfo, Stat
//	MsgFileName                 handle                    → name
//	MsgFileReadDir              handle, n i32             → count u32, DirEntry... (io.EOF error when none left and n > 0)
//
//	MsgInstanceSetNetwork       enabled bool, ifname, addr (CIDR), gateway, dns, mtu u32, createTap bool → [+ the TAP device, when createTap]
//	                            (configures the sandbox's egress device; with createTap the agent creates it first)
//
//	MsgCmdNew                   CmdSpec [+ the files its stdio names] → handle u64
//	MsgCmdStart                 handle                    → pid i32 [+ the pty master, when the spec asked for a pty and wantFD]
//	MsgCmdSpawn                 CmdSpec [+ the files its stdio names] → handle u64, pid i32 [+ the pty master]: New and Start in one
//	MsgCmdWait                  handle, [flags u8]        → ExitStatus (blocks until exit; flag 1: then forget the handle)
//	MsgCmdRun                   CmdSpec [+ the files its stdio names] → pid i32, ExitStatus: Spawn and Wait in one,
//	                            answered at the exit; no handle is kept, and no pty (a client that hangs up kills the process tree)
//	MsgCmdKill                  handle, signal i32, tree bool → (tree: the process group and every descendant)
//	MsgCmdFree                  handle                    → (forgets the handle; the process runs on)
//	MsgCmdAttach                handle, stream u8         → then the connection is the stream's raw bytes
//	MsgCmdSetConsoleSize        handle, rows u16, cols u16 →
const (
	// File operations (0x03xx), extensions.
	MsgFileReadAt  uint16 = 0x0308
	MsgFileWriteAt uint16 = 0x0309
	MsgFileReadDir uint16 = 0x030A

	// Command operations (0x04xx), extensions.
	MsgCmdAttach         uint16 = 0x040E
	MsgCmdSetConsoleSize uint16 = 0x040F
	MsgCmdSpawn          uint16 = 0x0410
)

// WaitRelease is the MsgCmdWait flag that releases the handle once the exit
// status is reported.
const WaitRelease uint8 = 1

// Stat is the part of a file's metadata the seed's FileInfo lacks; it
// follows the FileInfo in stat answers (extension). Ids are as the sandbox
// sees them; times are Unix nanoseconds.
type Stat struct {
	Uid, Gid                  uint32
	Nlink                     uint64
	Ino, Dev, Rdev            uint64
	Blocks                    int64
	AtimeNs, MtimeNs, CtimeNs int64
}

// EncodeStat encodes Stat: Uid, Gid (u32), Nlink, Ino, Dev, Rdev (u64),
// Blocks, AtimeNs, MtimeNs, CtimeNs (i64).
func EncodeStat(enc *Encoder, s Stat) {
	enc.Uint32(s.Uid)
	enc.Uint32(s.Gid)
	enc.Uint64(s.Nlink)
	enc.Uint64(s.Ino)
	enc.Uint64(s.Dev)
	enc.Uint64(s.Rdev)
	enc.Int64(s.Blocks)
	enc.Int64(s.AtimeNs)
	enc.Int64(s.MtimeNs)
	enc.Int64(s.CtimeNs)
}

// statSize is the encoded size of a Stat.
const statSize = 4 + 4 + 8*8

// DecodeStat decodes a Stat.
func DecodeStat(dec *Decoder) (Stat, error) {
	b, err := dec.take(statSize)
	if err != nil {
		return Stat{}, err
	}
	d := NewDecoder(b)
	var s Stat
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
	return s, nil
}

// Stdio modes of a CmdSpec stream.
const (
	StdioNull   uint8 = 0 // the null device
	StdioFile   uint8 = 1 // a descriptor sent with MsgCmdNew (FileIndex says which)
	StdioStream uint8 = 2 // a pipe in the agent, reached with MsgCmdAttach
	StdioPty    uint8 = 3 // the command's terminal (CmdSpec.Pty)
)

// Stream numbers for MsgCmdAttach.
const (
	StreamStdin  uint8 = 0
	StreamStdout uint8 = 1
	StreamStderr uint8 = 2
	StreamPty    uint8 = 3 // the pty master, both ways
)

// StdioSpec says where one of a command's standard streams goes.
type StdioSpec struct {
	Mode      uint8
	FileIndex int32 // for StdioFile: index into the files sent with MsgCmdNew
}

// CmdSpec describes a command for MsgCmdNew (extension).
type CmdSpec struct {
	Path  string   // the program: a path, or a name looked up in PATH
	Args  []string // argv, Args[0] included
	Env   []string // the whole environment, KEY=value
	Dir   string   // working directory; "" is /
	User  string   // "" (the instance's user), name, uid, or uid:gid / name:group
	Stdio [3]StdioSpec
	Pty   bool
	Rows  uint16
	Cols  uint16
	// WantFD asks for the pty master as a descriptor in the answer to
	// MsgCmdStart, where the connection can carry it.
	WantFD bool
}

// EncodeCmdSpec encodes a CmdSpec: Path, Args, Env, Dir, User, then for each
// of stdin, stdout, stderr a mode u8 and a file index i32, then Pty, Rows,
// Cols, WantFD.
func EncodeCmdSpec(enc *Encoder, s CmdSpec) {
	enc.String(s.Path)
	enc.StringSlice(s.Args)
	enc.StringSlice(s.Env)
	enc.String(s.Dir)
	enc.String(s.User)
	for _, st := range s.Stdio {
		enc.Uint8(st.Mode)
		enc.Int32(st.FileIndex)
	}
	enc.Bool(s.Pty)
	enc.Uint16(s.Rows)
	enc.Uint16(s.Cols)
	enc.Bool(s.WantFD)
}

// DecodeCmdSpec decodes a CmdSpec.
func DecodeCmdSpec(dec *Decoder) (CmdSpec, error) {
	var s CmdSpec
	var err error
	if s.Path, err = dec.String(); err != nil {
		return s, err
	}
	if s.Args, err = dec.StringSlice(); err != nil {
		return s, err
	}
	if s.Env, err = dec.StringSlice(); err != nil {
		return s, err
	}
	if s.Dir, err = dec.String(); err != nil {
		return s, err
	}
	if s.User, err = dec.String(); err != nil {
		return s, err
	}
	for i := range s.Stdio {
		if s.Stdio[i].Mode, err = dec.Uint8(); err != nil {
			return s, err
		}
		if s.Stdio[i].FileIndex, err = dec.Int32(); err != nil {
			return s, err
		}
	}
	if s.Pty, err = dec.Bool(); err != nil {
		return s, err
	}
	if s.Rows, err = dec.Uint16(); err != nil {
		return s, err
	}
	if s.Cols, err = dec.Uint16(); err != nil {
		return s, err
	}
	s.WantFD, err = dec.Bool()
	return s, err
}

// ExitStatus is how a command ended (extension).
type ExitStatus struct {
	Pid      int32
	Exited   bool  // it called exit; Code is valid
	Code     int32 // exit code, or -1 when killed by a signal
	Signal   int32 // the signal that killed it, or 0
	CoreDump bool
	UserNs   int64 // CPU time in user mode
	SysNs    int64 // CPU time in the kernel
	MaxRSSKB int64
}

// EncodeExitStatus encodes an ExitStatus field by field.
func EncodeExitStatus(enc *Encoder, s ExitStatus) {
	enc.Int32(s.Pid)
	enc.Bool(s.Exited)
	enc.Int32(s.Code)
	enc.Int32(s.Signal)
	enc.Bool(s.CoreDump)
	enc.Int64(s.UserNs)
	enc.Int64(s.SysNs)
	enc.Int64(s.MaxRSSKB)
}

// DecodeExitStatus decodes an ExitStatus.
func DecodeExitStatus(dec *Decoder) (ExitStatus, error) {
	var s ExitStatus
	var err error
	if s.Pid, err = dec.Int32(); err != nil {
		return s, err
	}
	if s.Exited, err = dec.Bool(); err != nil {
		return s, err
	}
	if s.Code, err = dec.Int32(); err != nil {
		return s, err
	}
	if s.Signal, err = dec.Int32(); err != nil {
		return s, err
	}
	if s.CoreDump, err = dec.Bool(); err != nil {
		return s, err
	}
	if s.UserNs, err = dec.Int64(); err != nil {
		return s, err
	}
	if s.SysNs, err = dec.Int64(); err != nil {
		return s, err
	}
	s.MaxRSSKB, err = dec.Int64()
	return s, err
}
