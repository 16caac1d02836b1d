package ipc

// Bodies of the command messages (0x04xx), which the agent serves.

// WaitRelease is the CmdWaitReq flag that releases the handle once the
// exit status is reported.
const WaitRelease uint8 = 1

// Stdio modes of a CmdSpec stream.
const (
	StdioNull   uint8 = 0 // the null device
	StdioFile   uint8 = 1 // a descriptor sent with the request (FileIndex says which)
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
	FileIndex int32 // for StdioFile: index into the files sent with the request
}

// CmdSpec describes a command: the request of MsgCmdNew, MsgCmdSpawn and
// MsgCmdRun (extension). It encodes as Path, Args, Env, Dir, User, then
// for each of stdin, stdout, stderr a mode u8 and a file index i32, then
// Pty, Rows, Cols, WantFD.
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
	// WantFD asks for the pty master as a descriptor in the answer that
	// starts the command, where the connection can carry it.
	WantFD bool
}

// Encode implements Msg.
func (s *CmdSpec) Encode(e *Encoder) {
	e.String(s.Path)
	e.StringSlice(s.Args)
	e.StringSlice(s.Env)
	e.String(s.Dir)
	e.String(s.User)
	for _, st := range s.Stdio {
		e.Uint8(st.Mode)
		e.Int32(st.FileIndex)
	}
	e.Bool(s.Pty)
	e.Uint16(s.Rows)
	e.Uint16(s.Cols)
	e.Bool(s.WantFD)
}

// Decode implements Msg.
func (s *CmdSpec) Decode(d *Decoder) (err error) {
	if s.Path, err = d.String(); err != nil {
		return err
	}
	if s.Args, err = d.StringSlice(); err != nil {
		return err
	}
	if s.Env, err = d.StringSlice(); err != nil {
		return err
	}
	if s.Dir, err = d.String(); err != nil {
		return err
	}
	if s.User, err = d.String(); err != nil {
		return err
	}
	for i := range s.Stdio {
		if s.Stdio[i].Mode, err = d.Uint8(); err != nil {
			return err
		}
		if s.Stdio[i].FileIndex, err = d.Int32(); err != nil {
			return err
		}
	}
	if s.Pty, err = d.Bool(); err != nil {
		return err
	}
	if s.Rows, err = d.Uint16(); err != nil {
		return err
	}
	if s.Cols, err = d.Uint16(); err != nil {
		return err
	}
	s.WantFD, err = d.Bool()
	return err
}

// ExitStatus is how a command ended (extension): MsgCmdWait's answer.
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

// Encode implements Msg.
func (s *ExitStatus) Encode(e *Encoder) {
	e.Int32(s.Pid)
	e.Bool(s.Exited)
	e.Int32(s.Code)
	e.Int32(s.Signal)
	e.Bool(s.CoreDump)
	e.Int64(s.UserNs)
	e.Int64(s.SysNs)
	e.Int64(s.MaxRSSKB)
}

// Decode implements Msg.
func (s *ExitStatus) Decode(d *Decoder) (err error) {
	if s.Pid, err = d.Int32(); err != nil {
		return err
	}
	if s.Exited, err = d.Bool(); err != nil {
		return err
	}
	if s.Code, err = d.Int32(); err != nil {
		return err
	}
	if s.Signal, err = d.Int32(); err != nil {
		return err
	}
	if s.CoreDump, err = d.Bool(); err != nil {
		return err
	}
	if s.UserNs, err = d.Int64(); err != nil {
		return err
	}
	if s.SysNs, err = d.Int64(); err != nil {
		return err
	}
	s.MaxRSSKB, err = d.Int64()
	return err
}

// WaitReq is MsgCmdWait's request.
type WaitReq struct {
	Handle uint64
	Flags  uint8 // optional: WaitRelease
}

// Encode implements Msg.
func (m *WaitReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Uint8(m.Flags)
}

// Decode implements Msg.
func (m *WaitReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.Flags, err = optUint8(d)
	return err
}

// KillReq is MsgCmdKill's request.
type KillReq struct {
	Handle uint64
	Signal int32
	Tree   bool // optional: the process group and every descendant
}

// Encode implements Msg.
func (m *KillReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Int32(m.Signal)
	e.Bool(m.Tree)
}

// Decode implements Msg.
func (m *KillReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	if m.Signal, err = d.Int32(); err != nil {
		return err
	}
	m.Tree, err = optBool(d)
	return err
}

// AttachReq is MsgCmdAttach's request: which of the command's streams
// the connection becomes.
type AttachReq struct {
	Handle uint64
	Stream uint8 // StreamStdin, ...
}

// Encode implements Msg.
func (m *AttachReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Uint8(m.Stream)
}

// Decode implements Msg.
func (m *AttachReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.Stream, err = d.Uint8()
	return err
}

// ConsoleSizeReq is MsgCmdSetConsoleSize's request.
type ConsoleSizeReq struct {
	Handle     uint64
	Rows, Cols uint16
}

// Encode implements Msg.
func (m *ConsoleSizeReq) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Uint16(m.Rows)
	e.Uint16(m.Cols)
}

// Decode implements Msg.
func (m *ConsoleSizeReq) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	if m.Rows, err = d.Uint16(); err != nil {
		return err
	}
	m.Cols, err = d.Uint16()
	return err
}

// HandleAns is the handle of a new object in the agent.
type HandleAns struct {
	Handle uint64
}

// Encode implements Msg.
func (m *HandleAns) Encode(e *Encoder) { e.Uint64(m.Handle) }

// Decode implements Msg.
func (m *HandleAns) Decode(d *Decoder) (err error) {
	m.Handle, err = d.Uint64()
	return err
}

// PidAns is the pid (in the sandbox) of a started process.
type PidAns struct {
	Pid int32
}

// Encode implements Msg.
func (m *PidAns) Encode(e *Encoder) { e.Int32(m.Pid) }

// Decode implements Msg.
func (m *PidAns) Decode(d *Decoder) (err error) {
	m.Pid, err = d.Int32()
	return err
}

// SpawnAns is MsgCmdSpawn's answer: the new command's handle and pid.
type SpawnAns struct {
	Handle uint64
	Pid    int32
}

// Encode implements Msg.
func (m *SpawnAns) Encode(e *Encoder) {
	e.Uint64(m.Handle)
	e.Int32(m.Pid)
}

// Decode implements Msg.
func (m *SpawnAns) Decode(d *Decoder) (err error) {
	if m.Handle, err = d.Uint64(); err != nil {
		return err
	}
	m.Pid, err = d.Int32()
	return err
}

// RunAns is MsgCmdRun's answer, given at the exit.
type RunAns struct {
	Pid    int32
	Status ExitStatus
}

// Encode implements Msg.
func (m *RunAns) Encode(e *Encoder) {
	e.Int32(m.Pid)
	m.Status.Encode(e)
}

// Decode implements Msg.
func (m *RunAns) Decode(d *Decoder) (err error) {
	if m.Pid, err = d.Int32(); err != nil {
		return err
	}
	return m.Status.Decode(d)
}
