package ipc

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"slices"
)

// Agent is a typed client of the agent's protocol (the messages whose
// descriptors name [PeerAgent]), over a [Client] connected to an agent or
// to a helper that forwards to one. Each method performs one call; errors
// are those of [Client.Do]. Files and connections a method returns are the
// caller's. It is safe for concurrent use.
type Agent struct {
	c *Client
}

// NewAgent returns the typed agent client over c.
func NewAgent(c *Client) *Agent { return &Agent{c: c} }

// Client returns the client the agent is reached through.
func (a *Agent) Client() *Client { return a.c }

// IsRunning asks whether the instance runs: the cheapest call there is.
func (a *Agent) IsRunning(ctx context.Context) (bool, error) {
	var ans BoolAns
	err := a.c.Do(ctx, MsgInstanceIsRunning, nil, &ans)
	return ans.Value, err
}

// Stat returns a file's metadata, following symlinks.
func (a *Agent) Stat(ctx context.Context, path string) (StatAns, error) {
	var ans StatAns
	err := a.c.Do(ctx, MsgFsStat, &PathReq{Path: path}, &ans)
	return ans, err
}

// Lstat returns a file's metadata, not following a final symlink.
func (a *Agent) Lstat(ctx context.Context, path string) (StatAns, error) {
	var ans StatAns
	err := a.c.Do(ctx, MsgFsLstat, &PathReq{Path: path}, &ans)
	return ans, err
}

// ReadFile returns a file's content; an error matching syscall.EFBIG when
// it does not fit in one message.
func (a *Agent) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var ans BytesAns
	err := a.c.Do(ctx, MsgFsReadFile, &PathReq{Path: path}, &ans)
	return ans.Data, err
}

// WriteFile writes a whole file, creating it with perm.
func (a *Agent) WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode) error {
	return a.c.Do(ctx, MsgFsWriteFile, &WriteFileReq{Path: path, Data: data, Perm: perm}, nil)
}

// OpenFile opens a file. With req.WantFD, on a connection that carries
// descriptors and for a file that is not a directory, the file comes back
// (and ans.Handle is 0); otherwise f is nil and the agent holds the file
// by ans.Handle.
func (a *Agent) OpenFile(ctx context.Context, req OpenFileReq) (ans OpenAns, f *os.File, err error) {
	files, err := a.c.DoFiles(ctx, MsgFsOpenFile, &req, nil, &ans)
	if err != nil {
		return ans, nil, err
	}
	f, err = oneFile(MsgFsOpenFile, files, ans.Handle == 0)
	return ans, f, err
}

// Remove removes a file or an empty directory.
func (a *Agent) Remove(ctx context.Context, path string) error {
	return a.c.Do(ctx, MsgFsRemove, &PathReq{Path: path}, nil)
}

// RemoveAll removes a path and everything under it.
func (a *Agent) RemoveAll(ctx context.Context, path string) error {
	return a.c.Do(ctx, MsgFsRemoveAll, &PathReq{Path: path}, nil)
}

// Mkdir creates a directory.
func (a *Agent) Mkdir(ctx context.Context, path string, perm fs.FileMode) error {
	return a.c.Do(ctx, MsgFsMkdir, &PathModeReq{Path: path, Mode: perm}, nil)
}

// MkdirAll creates a directory and its missing parents.
func (a *Agent) MkdirAll(ctx context.Context, path string, perm fs.FileMode) error {
	return a.c.Do(ctx, MsgFsMkdirAll, &PathModeReq{Path: path, Mode: perm}, nil)
}

// Chmod changes a file's mode.
func (a *Agent) Chmod(ctx context.Context, path string, mode fs.FileMode) error {
	return a.c.Do(ctx, MsgFsChmod, &PathModeReq{Path: path, Mode: mode}, nil)
}

// Chown changes a file's owner.
func (a *Agent) Chown(ctx context.Context, req ChownReq) error {
	return a.c.Do(ctx, MsgFsChown, &req, nil)
}

// Chtimes changes a file's times.
func (a *Agent) Chtimes(ctx context.Context, req ChtimesReq) error {
	return a.c.Do(ctx, MsgFsChtimes, &req, nil)
}

// Rename renames oldpath to newpath.
func (a *Agent) Rename(ctx context.Context, oldpath, newpath string) error {
	return a.c.Do(ctx, MsgFsRename, &PathPairReq{Old: oldpath, New: newpath}, nil)
}

// Symlink creates newname as a symlink to oldname.
func (a *Agent) Symlink(ctx context.Context, oldname, newname string) error {
	return a.c.Do(ctx, MsgFsSymlink, &PathPairReq{Old: oldname, New: newname}, nil)
}

// Readlink returns a symlink's target.
func (a *Agent) Readlink(ctx context.Context, path string) (string, error) {
	var ans StringAns
	err := a.c.Do(ctx, MsgFsReadlink, &PathReq{Path: path}, &ans)
	return ans.Value, err
}

// ReadDir returns a directory's entries, sorted by name.
func (a *Agent) ReadDir(ctx context.Context, path string) ([]DirEntry, error) {
	var ans DirAns
	err := a.c.Do(ctx, MsgFsReadDir, &PathReq{Path: path}, &ans)
	return dirAnswer(ans, MaxDirEntries, err)
}

// dirAnswer returns the entries of a directory answer that may hold at
// most max: more is the agent breaking the protocol (ErrMalformed), which
// the caller then holds no more of.
func dirAnswer(ans DirAns, max int, err error) ([]DirEntry, error) {
	if err == nil && len(ans.Entries) > max {
		return nil, fmt.Errorf("%w: %d directory entries where at most %d may come", ErrMalformed, len(ans.Entries), max)
	}
	return ans.Entries, err
}

// FileRead reads at most max bytes at the offset of file h; an error
// matching io.EOF at the end.
func (a *Agent) FileRead(ctx context.Context, h uint64, max uint32) ([]byte, error) {
	var ans BytesAns
	err := a.c.Do(ctx, MsgFileRead, &ReadReq{Handle: h, Max: max}, &ans)
	return ans.Data, err
}

// FileReadAt reads at most max bytes at off; an error matching io.EOF when
// short at the end.
func (a *Agent) FileReadAt(ctx context.Context, h uint64, off int64, max uint32) ([]byte, error) {
	var ans BytesAns
	err := a.c.Do(ctx, MsgFileReadAt, &ReadAtReq{Handle: h, Off: off, Max: max}, &ans)
	return ans.Data, err
}

// FileWrite writes data at the offset of file h and returns how much it
// wrote.
func (a *Agent) FileWrite(ctx context.Context, h uint64, data []byte) (int, error) {
	var ans CountAns
	err := a.c.Do(ctx, MsgFileWrite, &WriteReq{Handle: h, Data: data}, &ans)
	return int(ans.N), err
}

// FileWriteAt writes data at off and returns how much it wrote.
func (a *Agent) FileWriteAt(ctx context.Context, h uint64, off int64, data []byte) (int, error) {
	var ans CountAns
	err := a.c.Do(ctx, MsgFileWriteAt, &WriteAtReq{Handle: h, Off: off, Data: data}, &ans)
	return int(ans.N), err
}

// FileSeek sets the offset of file h and returns it.
func (a *Agent) FileSeek(ctx context.Context, h uint64, off int64, whence int) (int64, error) {
	var ans SeekAns
	err := a.c.Do(ctx, MsgFileSeek, &SeekReq{Handle: h, Off: off, Whence: int32(whence)}, &ans)
	return ans.Pos, err
}

// FileStat returns the metadata of file h.
func (a *Agent) FileStat(ctx context.Context, h uint64) (StatAns, error) {
	var ans StatAns
	err := a.c.Do(ctx, MsgFileStat, &HandleReq{Handle: h}, &ans)
	return ans, err
}

// FileSync commits file h to stable storage.
func (a *Agent) FileSync(ctx context.Context, h uint64) error {
	return a.c.Do(ctx, MsgFileSync, &HandleReq{Handle: h}, nil)
}

// FileTruncate changes the size of file h.
func (a *Agent) FileTruncate(ctx context.Context, h uint64, size int64) error {
	return a.c.Do(ctx, MsgFileTruncate, &TruncateReq{Handle: h, Size: size}, nil)
}

// FileReadDir returns the next entries of directory h, as os.File.ReadDir
// does, but at most MaxDirEntries (n <= 0 asks for that many); an answer
// of more than asked is an error matching ErrMalformed.
func (a *Agent) FileReadDir(ctx context.Context, h uint64, n int) ([]DirEntry, error) {
	var ans DirAns
	err := a.c.Do(ctx, MsgFileReadDir, &ReadDirReq{Handle: h, N: int32(min(n, MaxDirEntries))}, &ans)
	if n <= 0 {
		n = MaxDirEntries
	}
	return dirAnswer(ans, min(n, MaxDirEntries), err)
}

// FileClose closes file h.
func (a *Agent) FileClose(ctx context.Context, h uint64) error {
	return a.c.Do(ctx, MsgFileClose, &HandleReq{Handle: h}, nil)
}

// CmdSpawn creates and starts a command whose StdioFile streams name
// files. The pty master comes back when the spec asked for one with
// WantFD and the connection carries it; otherwise pty is nil and the
// terminal is reached with CmdAttach.
func (a *Agent) CmdSpawn(ctx context.Context, spec *CmdSpec, files []*os.File) (ans SpawnAns, pty *os.File, err error) {
	got, err := a.c.DoFiles(ctx, MsgCmdSpawn, spec, files, &ans)
	if err != nil {
		return ans, nil, err
	}
	if len(got) == 0 {
		return ans, nil, nil
	}
	pty, err = oneFile(MsgCmdSpawn, got, spec.Pty && spec.WantFD)
	return ans, pty, err
}

// CmdRun runs a command and answers at its exit, waiting on the calling
// thread (see [Client.DoWaiting]).
func (a *Agent) CmdRun(spec *CmdSpec, files []*os.File) (RunAns, error) {
	var ans RunAns
	got, err := a.c.DoWaiting(MsgCmdRun, spec, files, &ans)
	closeFiles(got)
	return ans, err
}

// CmdWait waits for command h's exit; with WaitRelease in flags the agent
// forgets the handle.
func (a *Agent) CmdWait(ctx context.Context, h uint64, flags uint8) (ExitStatus, error) {
	var ans ExitStatus
	err := a.c.Do(ctx, MsgCmdWait, &WaitReq{Handle: h, Flags: flags}, &ans)
	return ans, err
}

// CmdKill signals command h's process, or with tree its process group
// and every descendant.
func (a *Agent) CmdKill(ctx context.Context, h uint64, sig int32, tree bool) error {
	return a.c.Do(ctx, MsgCmdKill, &KillReq{Handle: h, Signal: sig, Tree: tree}, nil)
}

// CmdAttach returns a connection that is one of command h's streams.
func (a *Agent) CmdAttach(ctx context.Context, h uint64, stream uint8) (net.Conn, error) {
	files, conn, err := a.c.DoStream(ctx, MsgCmdAttach, &AttachReq{Handle: h, Stream: stream}, nil)
	closeFiles(files)
	return conn, err
}

// CmdSetConsoleSize resizes command h's terminal.
func (a *Agent) CmdSetConsoleSize(ctx context.Context, h uint64, rows, cols uint16) error {
	return a.c.Do(ctx, MsgCmdSetConsoleSize, &ConsoleSizeReq{Handle: h, Rows: rows, Cols: cols}, nil)
}

// Listen listens inside the sandbox. With req.WantFD, where descriptors
// pass, the socket comes back as f; otherwise the agent holds the listener
// by ans.Handle.
func (a *Agent) Listen(ctx context.Context, req ListenReq) (ans ListenAns, f *os.File, err error) {
	files, err := a.c.DoFiles(ctx, MsgNetListen, &req, nil, &ans)
	if err != nil {
		return ans, nil, err
	}
	f, err = oneFile(MsgNetListen, files, ans.Handle == 0)
	return ans, f, err
}

// ListenerAccept accepts a connection on listener h and returns it as the
// call's connection.
func (a *Agent) ListenerAccept(ctx context.Context, h uint64) (ConnAns, net.Conn, error) {
	var ans ConnAns
	files, conn, err := a.c.DoStream(ctx, MsgListenerAccept, &HandleReq{Handle: h}, &ans)
	closeFiles(files)
	return ans, conn, err
}

// ListenerClose closes listener h.
func (a *Agent) ListenerClose(ctx context.Context, h uint64) error {
	return a.c.Do(ctx, MsgListenerClose, &HandleReq{Handle: h}, nil)
}

// Dial connects from inside the sandbox: the socket comes back as f where
// descriptors pass and req.WantFD asks, otherwise the call's connection
// as conn.
func (a *Agent) Dial(ctx context.Context, req DialReq) (ans ConnAns, f *os.File, conn net.Conn, err error) {
	files, conn, err := a.c.DoStream(ctx, MsgNetDial, &req, &ans)
	if err != nil {
		return ans, nil, nil, err
	}
	f, err = oneFile(MsgNetDial, files, conn == nil)
	if err != nil && conn != nil {
		conn.Close()
		conn = nil
	}
	return ans, f, conn, err
}

// ListenPacket opens a packet socket inside the sandbox: it comes back as
// f where descriptors pass and req.WantFD asks, otherwise as conn, which
// carries framed datagrams (ReadPacketFrame, WritePacketFrame). local is
// its address.
func (a *Agent) ListenPacket(ctx context.Context, req ListenReq) (local string, f *os.File, conn net.Conn, err error) {
	var ans StringAns
	files, conn, err := a.c.DoStream(ctx, MsgNetListenPacket, &req, &ans)
	if err != nil {
		return "", nil, nil, err
	}
	f, err = oneFile(MsgNetListenPacket, files, conn == nil)
	if err != nil && conn != nil {
		conn.Close()
		conn = nil
	}
	return ans.Value, f, conn, err
}

// SetNetwork configures the sandbox's egress device; with req.CreateTap
// the agent creates it and tap is the device.
func (a *Agent) SetNetwork(ctx context.Context, req NetworkReq) (tap *os.File, err error) {
	files, err := a.c.DoFiles(ctx, MsgInstanceSetNetwork, &req, nil, nil)
	if err != nil {
		return nil, err
	}
	return oneFile(MsgInstanceSetNetwork, files, req.CreateTap)
}

// WriteFileStream writes data to the file at path as os.WriteFile does,
// streaming it on the call's connection (MsgFsWriteStream): where
// descriptors cannot pass, bulk data then costs no round trip per chunk
// and no copy into messages. It returns the agent's error, or a
// *TransportError when the stream breaks.
func (a *Agent) WriteFileStream(ctx context.Context, path string, data []byte, perm fs.FileMode) error {
	files, conn, err := a.c.DoStream(ctx, MsgFsWriteStream, &WriteStreamReq{Path: path, Perm: uint32(perm), Size: uint64(len(data))}, nil)
	closeFiles(files)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer a.c.CloseOnEnd(conn)()
	if _, err := conn.Write(data); err != nil {
		return &TransportError{Op: "write", Err: err}
	}
	return ReadStatus(conn)
}

// maxStreamPrealloc bounds what ReadFileStream allocates on the agent's
// word alone; more grows as the data arrives.
const maxStreamPrealloc = MaxMessageSize

// ReadFileStream reads a whole regular file, streamed on the call's
// connection (MsgFsReadStream): where descriptors cannot pass, a file
// larger than one message. It returns the agent's error (the open's, or
// the status that ends the stream), or a *TransportError when the stream
// breaks.
func (a *Agent) ReadFileStream(ctx context.Context, path string) ([]byte, error) {
	var ans ReadStreamAns
	files, conn, err := a.c.DoStream(ctx, MsgFsReadStream, &PathReq{Path: path}, &ans)
	closeFiles(files)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer a.c.CloseOnEnd(conn)()
	if ans.Size > math.MaxInt-1 {
		return nil, &TransportError{Op: "read", Err: fmt.Errorf("the agent announced a file of %d bytes", ans.Size)}
	}
	size := int(ans.Size)
	data := make([]byte, 0, min(size, maxStreamPrealloc))
	for len(data) < size {
		if len(data) == cap(data) {
			data = slices.Grow(data, min(size-len(data), cap(data)))
		}
		n, err := conn.Read(data[len(data):min(cap(data), size)])
		data = data[:len(data)+n]
		if err != nil && len(data) < size {
			return nil, &TransportError{Op: "read", Err: err}
		}
	}
	if err := ReadStatus(conn); err != nil {
		return nil, err
	}
	return data, nil
}

// Snapshot asks the agent for its writable layer: the returned connection
// carries it as an OCI layer tar, then ends.
func (a *Agent) Snapshot(ctx context.Context, opts SnapshotOptions) (net.Conn, error) {
	files, conn, err := a.c.DoStream(ctx, MsgFsSnapshot, &opts, nil)
	closeFiles(files)
	return conn, err
}

// oneFile checks the files of an answer that brings at most one: exactly
// one when want, none otherwise.
func oneFile(t uint16, files []*os.File, want bool) (*os.File, error) {
	switch {
	case want && len(files) == 1:
		return files[0], nil
	case !want && len(files) == 0:
		return nil, nil
	}
	closeFiles(files)
	return nil, fmt.Errorf("%s: %w: %d descriptors", msgName(t), ErrMalformed, len(files))
}
