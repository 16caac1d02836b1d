package sandbox

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// The file API of an Instance. Two kinds of methods share it:
//
//   - the fs.FS methods (Open, Stat, ReadFile, ReadDir, Lstat, ReadLink)
//     take fs.FS names ("etc/passwd"); a leading slash is also accepted
//     ("/etc/passwd" names the same file). Other forms are rejected with
//     fs.ErrInvalid, as io/fs asks.
//   - the os-shaped methods (Create, OpenFile, WriteFile, Mkdir, MkdirAll,
//     Remove, RemoveAll, Rename, Symlink, Readlink, Chmod, Chown, Lchown,
//     Chtimes) take any path, as the os package does; a relative path is
//     relative to the sandbox's root.
//
// Every path is resolved inside the sandbox by its agent: a symlink in the
// sandbox, absolute or relative, never leads to a host file. Errors are
// *fs.PathError (*os.LinkError for Rename and Symlink) whose Err matches
// fs.ErrNotExist, fs.ErrExist, fs.ErrPermission and the other io/fs and
// syscall errors, as for local files.

var (
	_ fs.FS         = (*Instance)(nil)
	_ fs.StatFS     = (*Instance)(nil)
	_ fs.ReadFileFS = (*Instance)(nil)
	_ fs.ReadDirFS  = (*Instance)(nil)
	_ fs.ReadLinkFS = (*Instance)(nil)
)

// maxInlineWrite is the largest WriteFile sent as one message; larger data
// goes through an opened file.
const maxInlineWrite = 1 << 20

// streamWriteMin is the size above which WriteFile, where descriptors
// cannot pass, streams the data on a connection of its own
// (MsgFsWriteStream) rather than in one message: no copy into a message,
// and the transport, any forwarding and the agent's writes overlap.
const streamWriteMin = 8 << 20

// fsPath checks an fs.FS name (with an optional leading slash) and returns
// the sandbox path.
func fsPath(op, name string) (string, error) {
	n := strings.TrimPrefix(name, "/")
	if n == "" && name == "/" {
		n = "."
	}
	if !fs.ValidPath(n) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if n == "." {
		return "/", nil
	}
	return "/" + n, nil
}

// osPath checks an os-style path and returns the sandbox path.
func osPath(op, name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if !strings.HasPrefix(name, "/") {
		return "/" + name, nil
	}
	return name, nil
}

// joinPath joins a sandbox directory and a name.
func joinPath(dir, name string) string { return path.Join(dir, name) }

// pathErr makes the *fs.PathError of a call's failure (see remoteErr), or
// returns nil.
func (i *Instance) pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: name, Err: i.remoteErr(err)}
}

// remoteErr turns what a call returned into the error to show the user: the
// remote error without its op and path (the caller supplies them), or,
// when the connection failed because the sandbox stopped, why it stopped.
func (i *Instance) remoteErr(err error) error {
	var ie *ipc.IPCError
	if errors.As(err, &ie) {
		return ie.Bare()
	}
	if aerr := i.stoppedErr(err); aerr != nil {
		return aerr
	}
	return err
}

// Open opens the named file for reading (fs.FS).
func (i *Instance) Open(name string) (fs.File, error) {
	p, err := fsPath("open", name)
	if err != nil {
		return nil, err
	}
	return i.openFile(name, p, os.O_RDONLY, 0)
}

// Create creates or truncates the named file, as os.Create does, and opens
// it for reading and writing.
func (i *Instance) Create(name string) (*File, error) {
	return i.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// OpenFile opens the named file with the os.O_* flags and, when it creates
// the file, the permissions perm (before the umask 022), as os.OpenFile
// does.
func (i *Instance) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	p, err := osPath("open", name)
	if err != nil {
		return nil, err
	}
	return i.openFile(name, p, flag, perm)
}

// openFile opens p; the file is backed by a descriptor when the connection
// carries them, and by an agent handle otherwise.
func (i *Instance) openFile(name, p string, flag int, perm fs.FileMode) (*File, error) {
	ans, f, err := i.agent.OpenFile(context.Background(), ipc.OpenFileReq{Path: p, Flag: int32(flag), Perm: perm, WantFD: i.fdOK})
	if err != nil {
		return nil, i.pathErr("open", name, err)
	}
	file := &File{inst: i, name: name, path: p, info: newFileInfo(name, ans.Info, ans.Stat)}
	if f != nil {
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			// The agent passes regular files alone: the host's reads of
			// anything else (a device, a terminal) need not end.
			f.Close()
			return nil, i.pathErr("open", name, errors.New("the agent passed a descriptor of a file that is not regular"))
		}
		file.io = &fdFile{f: f}
	} else {
		file.io = &agentFile{inst: i, handle: ans.Handle}
	}
	return file, nil
}

// Stat returns the FileInfo of the named file, following symlinks
// (fs.StatFS).
func (i *Instance) Stat(name string) (fs.FileInfo, error) {
	p, err := fsPath("stat", name)
	if err != nil {
		return nil, err
	}
	ans, err := i.agent.Stat(context.Background(), p)
	if err != nil {
		return nil, i.pathErr("stat", name, err)
	}
	return newFileInfo(name, ans.Info, ans.Stat), nil
}

// Lstat returns the FileInfo of the named file without following a final
// symlink (fs.ReadLinkFS).
func (i *Instance) Lstat(name string) (fs.FileInfo, error) {
	p, err := fsPath("lstat", name)
	if err != nil {
		return nil, err
	}
	ans, err := i.agent.Lstat(context.Background(), p)
	if err != nil {
		return nil, i.pathErr("lstat", name, err)
	}
	return newFileInfo(name, ans.Info, ans.Stat), nil
}

// readAhead bounds the room ReadFile makes for a file before its bytes
// come.
const readAhead = 64 << 20

// ReadFile returns the content of the named file (fs.ReadFileFS). It
// reads the whole file into memory, as os.ReadFile does, however large
// the sandbox made it: to read a file whose size you do not control, Open
// it and read through io.LimitReader.
func (i *Instance) ReadFile(name string) ([]byte, error) {
	p, err := fsPath("open", name)
	if err != nil {
		return nil, err
	}
	if i.fdOK {
		f, err := i.openFile(name, p, os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		if fd, ok := f.io.(*fdFile); ok {
			defer f.Close()
			return readAll(fd.f, f.info.size)
		}
		// Not a regular file (the agent passes no other): the agent reads
		// it, as where descriptors cannot pass, and bounds it.
		f.Close()
	}
	data, err := i.agent.ReadFile(context.Background(), p)
	if err == nil {
		return data, nil
	}
	if !errors.Is(err, syscall.EFBIG) {
		return nil, i.pathErr("open", name, err)
	}
	// Too large for one answer: the file comes as a stream, its reads
	// pipelined through every hop, rather than message by message.
	data, err = i.agent.ReadFileStream(context.Background(), p)
	if err != nil {
		return nil, i.pathErr("open", name, err)
	}
	return data, nil
}

// readAll reads f to its end. size, the file's size when opened, is the
// sandbox's to choose, holes included (a sparse file of a terabyte takes
// no room): room for more than readAhead of it comes as bytes do.
func readAll(f io.Reader, size int64) ([]byte, error) {
	data := make([]byte, 0, min(size, readAhead)+1)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ReadDir returns the entries of the named directory, sorted by name
// (fs.ReadDirFS). A directory of more than 4 Mi entries is an error
// matching syscall.EFBIG: read it open, n entries at a time.
func (i *Instance) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := fsPath("readdir", name)
	if err != nil {
		return nil, err
	}
	entries, err := i.agent.ReadDir(context.Background(), p)
	if errors.Is(err, syscall.EFBIG) {
		return i.readDirInBatches(name)
	}
	if err != nil {
		return nil, i.pathErr("readdir", name, err)
	}
	return i.dirEntries(entries, p), nil
}

// maxDirRead is the most entries ReadDir, and an open directory's
// ReadDir(n <= 0), hold for the caller: 4 Mi, some hundreds of MiB of
// names. A directory of more is read n entries at a time (File.ReadDir),
// so that neither a sandbox's directory nor an agent that answers without
// end holds the host's memory without bound.
const maxDirRead = 64 * ipc.MaxDirEntries

// readDirInBatches is ReadDir for a directory of more entries than one
// answer holds (ipc.MaxDirEntries): read through an open directory, a
// batch at a time, then sorted.
func (i *Instance) readDirInBatches(name string) ([]fs.DirEntry, error) {
	p, err := fsPath("open", name)
	if err != nil {
		return nil, err
	}
	f, err := i.openFile(name, p, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// ReadLink returns the target of the named symlink (fs.ReadLinkFS).
func (i *Instance) ReadLink(name string) (string, error) {
	p, err := fsPath("readlink", name)
	if err != nil {
		return "", err
	}
	return i.readlink(name, p)
}

// Readlink returns the target of the named symlink, as os.Readlink does.
func (i *Instance) Readlink(name string) (string, error) {
	p, err := osPath("readlink", name)
	if err != nil {
		return "", err
	}
	return i.readlink(name, p)
}

func (i *Instance) readlink(name, p string) (string, error) {
	target, err := i.agent.Readlink(context.Background(), p)
	return target, i.pathErr("readlink", name, err)
}

// WriteFile writes data to the named file, creating it with permissions
// perm (before the umask 022) if needed, and truncating it otherwise, as
// os.WriteFile does.
func (i *Instance) WriteFile(name string, data []byte, perm fs.FileMode) error {
	p, err := osPath("open", name)
	if err != nil {
		return err
	}
	if !i.fdOK && len(data) > streamWriteMin {
		return i.pathErr("open", name, i.agent.WriteFileStream(context.Background(), p, data, perm))
	}
	if len(data) <= maxInlineWrite || !i.fdOK {
		if len(data) <= ipc.MaxMessageSize-len(p)-64 {
			return i.pathErr("open", name, i.agent.WriteFile(context.Background(), p, data, perm))
		}
	}
	f, err := i.openFile(name, p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// pathOp runs op on the sandbox path of name.
func (i *Instance) pathOp(op, name string, fn func(p string) error) error {
	p, err := osPath(op, name)
	if err != nil {
		return err
	}
	return i.pathErr(op, name, fn(p))
}

// Mkdir creates a directory with permissions perm (before the umask 022).
func (i *Instance) Mkdir(name string, perm fs.FileMode) error {
	return i.pathOp("mkdir", name, func(p string) error { return i.agent.Mkdir(context.Background(), p, perm) })
}

// MkdirAll creates a directory and any missing parents, as os.MkdirAll does.
func (i *Instance) MkdirAll(name string, perm fs.FileMode) error {
	return i.pathOp("mkdir", name, func(p string) error { return i.agent.MkdirAll(context.Background(), p, perm) })
}

// Remove removes a file or an empty directory.
func (i *Instance) Remove(name string) error {
	return i.pathOp("remove", name, func(p string) error { return i.agent.Remove(context.Background(), p) })
}

// RemoveAll removes a path and everything under it, as os.RemoveAll does;
// a missing path is not an error. It refuses to remove the sandbox's root.
func (i *Instance) RemoveAll(name string) error {
	return i.pathOp("removeall", name, func(p string) error { return i.agent.RemoveAll(context.Background(), p) })
}

// Chmod changes the mode of the named file, following symlinks.
func (i *Instance) Chmod(name string, mode fs.FileMode) error {
	return i.pathOp("chmod", name, func(p string) error { return i.agent.Chmod(context.Background(), p, mode) })
}

// Chown changes the owner of the named file, following symlinks; uid and
// gid are the sandbox's, and -1 leaves one unchanged.
func (i *Instance) Chown(name string, uid, gid int) error {
	return i.pathOp("chown", name, func(p string) error {
		return i.agent.Chown(context.Background(), ipc.ChownReq{Path: p, Uid: int32(uid), Gid: int32(gid)})
	})
}

// Lchown is Chown without following a final symlink.
func (i *Instance) Lchown(name string, uid, gid int) error {
	return i.pathOp("lchown", name, func(p string) error {
		return i.agent.Chown(context.Background(), ipc.ChownReq{Path: p, Uid: int32(uid), Gid: int32(gid), NoFollow: true})
	})
}

// Chtimes changes the access and modification times of the named file; a
// zero time leaves that time unchanged, as with os.Chtimes.
func (i *Instance) Chtimes(name string, atime, mtime time.Time) error {
	req := ipc.ChtimesReq{AtimeNs: atime.UnixNano(), MtimeNs: mtime.UnixNano()}
	if atime.IsZero() {
		req.Flags |= ipc.ChtimesKeepAtime
	}
	if mtime.IsZero() {
		req.Flags |= ipc.ChtimesKeepMtime
	}
	return i.pathOp("chtimes", name, func(p string) error {
		req.Path = p
		return i.agent.Chtimes(context.Background(), req)
	})
}

// Rename renames (moves) oldpath to newpath inside the sandbox, as
// os.Rename does. Errors are *os.LinkError.
func (i *Instance) Rename(oldpath, newpath string) error {
	return i.linkOp("rename", i.agent.Rename, oldpath, newpath, true)
}

// Symlink creates newname as a symlink to oldname, as os.Symlink does; the
// target is stored as given and resolved inside the sandbox when followed.
// Errors are *os.LinkError.
func (i *Instance) Symlink(oldname, newname string) error {
	return i.linkOp("symlink", i.agent.Symlink, oldname, newname, false)
}

func (i *Instance) linkOp(op string, call func(ctx context.Context, oldp, newp string) error, oldp, newp string, rootOld bool) error {
	o, n := oldp, newp
	var err error
	if rootOld {
		if o, err = osPath(op, oldp); err != nil {
			return &os.LinkError{Op: op, Old: oldp, New: newp, Err: fs.ErrInvalid}
		}
	} else if oldp == "" || strings.ContainsRune(oldp, 0) {
		return &os.LinkError{Op: op, Old: oldp, New: newp, Err: fs.ErrInvalid}
	}
	if n, err = osPath(op, newp); err != nil {
		return &os.LinkError{Op: op, Old: oldp, New: newp, Err: fs.ErrInvalid}
	}
	if err := call(context.Background(), o, n); err != nil {
		return &os.LinkError{Op: op, Old: oldp, New: newp, Err: i.remoteErr(err)}
	}
	return nil
}
