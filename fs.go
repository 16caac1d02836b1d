package sandbox

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
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

// call sends one request to the agent and returns a decoder positioned
// after the success byte. Failures come back as *fs.PathError{op, name}.
func (i *Instance) call(op, name string, msg uint16, enc func(*ipc.Encoder)) (*ipc.Decoder, error) {
	var e ipc.Encoder
	enc(&e)
	resp, err := i.client.CallContext(context.Background(), msg, e.Bytes())
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: i.remoteErr(err)}
	}
	return ipc.NewDecoder(resp[1:]), nil
}

// exchange is call with descriptors both ways.
func (i *Instance) exchange(op, name string, msg uint16, files []*os.File, enc func(*ipc.Encoder)) (*ipc.Decoder, []*os.File, error) {
	var e ipc.Encoder
	enc(&e)
	resp, err := i.client.Exchange(context.Background(), ipc.Message{Type: msg, Payload: e.Bytes(), Files: files})
	if err != nil {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: i.remoteErr(err)}
	}
	return ipc.NewDecoder(resp.Payload[1:]), resp.Files, nil
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
	dec, files, err := i.exchange("open", name, ipc.MsgFsOpenFile, nil, func(e *ipc.Encoder) {
		e.String(p)
		e.Int32(int32(flag))
		e.Uint32(uint32(perm))
		e.Bool(i.fdOK)
	})
	if err != nil {
		return nil, err
	}
	h, err := dec.Uint64()
	if err == nil {
		var info *fileInfo
		if info, err = decodeFileInfo(dec); err == nil {
			f := &File{inst: i, name: name, path: p, handle: h, info: info}
			if len(files) == 1 {
				f.f = files[0]
			} else if len(files) > 0 || h == 0 {
				err = errors.New("malformed open answer")
			} else {
				return f, nil
			}
			if err == nil {
				return f, nil
			}
		}
	}
	for _, f := range files {
		f.Close()
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: err}
}

// Stat returns the FileInfo of the named file, following symlinks
// (fs.StatFS).
func (i *Instance) Stat(name string) (fs.FileInfo, error) {
	p, err := fsPath("stat", name)
	if err != nil {
		return nil, err
	}
	return i.stat("stat", ipc.MsgFsStat, name, p)
}

// Lstat returns the FileInfo of the named file without following a final
// symlink (fs.ReadLinkFS).
func (i *Instance) Lstat(name string) (fs.FileInfo, error) {
	p, err := fsPath("lstat", name)
	if err != nil {
		return nil, err
	}
	return i.stat("lstat", ipc.MsgFsLstat, name, p)
}

func (i *Instance) stat(op string, msg uint16, name, p string) (fs.FileInfo, error) {
	dec, err := i.call(op, name, msg, func(e *ipc.Encoder) { e.String(p) })
	if err != nil {
		return nil, err
	}
	fi, err := decodeFileInfo(dec)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return fi, nil
}

// ReadFile returns the content of the named file (fs.ReadFileFS).
func (i *Instance) ReadFile(name string) ([]byte, error) {
	p, err := fsPath("open", name)
	if err != nil {
		return nil, err
	}
	if !i.fdOK {
		dec, err := i.call("open", name, ipc.MsgFsReadFile, func(e *ipc.Encoder) { e.String(p) })
		if err == nil {
			return dec.Bytes()
		}
		if !errors.Is(err, syscall.EFBIG) {
			return nil, err
		}
	}
	f, err := i.openFile(name, p, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, 0, f.info.size+1)
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
// (fs.ReadDirFS).
func (i *Instance) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := fsPath("readdir", name)
	if err != nil {
		return nil, err
	}
	dec, err := i.call("readdir", name, ipc.MsgFsReadDir, func(e *ipc.Encoder) { e.String(p) })
	if err != nil {
		return nil, err
	}
	entries, err := i.decodeDirEntries(dec, p)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
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
	dec, err := i.call("readlink", name, ipc.MsgFsReadlink, func(e *ipc.Encoder) { e.String(p) })
	if err != nil {
		return "", err
	}
	return dec.String()
}

// WriteFile writes data to the named file, creating it with permissions
// perm (before the umask 022) if needed, and truncating it otherwise, as
// os.WriteFile does.
func (i *Instance) WriteFile(name string, data []byte, perm fs.FileMode) error {
	p, err := osPath("open", name)
	if err != nil {
		return err
	}
	if len(data) <= maxInlineWrite || !i.fdOK {
		if len(data) <= ipc.MaxMessageSize-len(p)-64 {
			_, err := i.call("open", name, ipc.MsgFsWriteFile, func(e *ipc.Encoder) {
				e.String(p)
				e.WriteBytes(data)
				e.Uint32(uint32(perm))
			})
			return err
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

// pathOp runs a request that takes a path and returns nothing.
func (i *Instance) pathOp(op, name string, msg uint16, enc func(e *ipc.Encoder, p string)) error {
	p, err := osPath(op, name)
	if err != nil {
		return err
	}
	_, err = i.call(op, name, msg, func(e *ipc.Encoder) { enc(e, p) })
	return err
}

// Mkdir creates a directory with permissions perm (before the umask 022).
func (i *Instance) Mkdir(name string, perm fs.FileMode) error {
	return i.pathOp("mkdir", name, ipc.MsgFsMkdir, func(e *ipc.Encoder, p string) { e.String(p); e.Uint32(uint32(perm)) })
}

// MkdirAll creates a directory and any missing parents, as os.MkdirAll does.
func (i *Instance) MkdirAll(name string, perm fs.FileMode) error {
	return i.pathOp("mkdir", name, ipc.MsgFsMkdirAll, func(e *ipc.Encoder, p string) { e.String(p); e.Uint32(uint32(perm)) })
}

// Remove removes a file or an empty directory.
func (i *Instance) Remove(name string) error {
	return i.pathOp("remove", name, ipc.MsgFsRemove, func(e *ipc.Encoder, p string) { e.String(p) })
}

// RemoveAll removes a path and everything under it, as os.RemoveAll does;
// a missing path is not an error. It refuses to remove the sandbox's root.
func (i *Instance) RemoveAll(name string) error {
	return i.pathOp("removeall", name, ipc.MsgFsRemoveAll, func(e *ipc.Encoder, p string) { e.String(p) })
}

// Chmod changes the mode of the named file, following symlinks.
func (i *Instance) Chmod(name string, mode fs.FileMode) error {
	return i.pathOp("chmod", name, ipc.MsgFsChmod, func(e *ipc.Encoder, p string) { e.String(p); e.Uint32(uint32(mode)) })
}

// Chown changes the owner of the named file, following symlinks; uid and
// gid are the sandbox's, and -1 leaves one unchanged.
func (i *Instance) Chown(name string, uid, gid int) error {
	return i.pathOp("chown", name, ipc.MsgFsChown, func(e *ipc.Encoder, p string) {
		e.String(p)
		e.Int32(int32(uid))
		e.Int32(int32(gid))
		e.Bool(false)
	})
}

// Lchown is Chown without following a final symlink.
func (i *Instance) Lchown(name string, uid, gid int) error {
	return i.pathOp("lchown", name, ipc.MsgFsChown, func(e *ipc.Encoder, p string) {
		e.String(p)
		e.Int32(int32(uid))
		e.Int32(int32(gid))
		e.Bool(true)
	})
}

// Chtimes changes the access and modification times of the named file; a
// zero time leaves that time unchanged, as with os.Chtimes.
func (i *Instance) Chtimes(name string, atime, mtime time.Time) error {
	return i.pathOp("chtimes", name, ipc.MsgFsChtimes, func(e *ipc.Encoder, p string) {
		var flags uint8
		if atime.IsZero() {
			flags |= 1
		}
		if mtime.IsZero() {
			flags |= 2
		}
		e.String(p)
		e.Int64(atime.UnixNano())
		e.Int64(mtime.UnixNano())
		e.Uint8(flags)
	})
}

// Rename renames (moves) oldpath to newpath inside the sandbox, as
// os.Rename does. Errors are *os.LinkError.
func (i *Instance) Rename(oldpath, newpath string) error {
	return i.linkOp("rename", ipc.MsgFsRename, oldpath, newpath, true)
}

// Symlink creates newname as a symlink to oldname, as os.Symlink does; the
// target is stored as given and resolved inside the sandbox when followed.
// Errors are *os.LinkError.
func (i *Instance) Symlink(oldname, newname string) error {
	return i.linkOp("symlink", ipc.MsgFsSymlink, oldname, newname, false)
}

func (i *Instance) linkOp(op string, msg uint16, oldp, newp string, rootOld bool) error {
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
	_, err = i.call(op, oldp, msg, func(e *ipc.Encoder) { e.String(o); e.String(n) })
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &os.LinkError{Op: op, Old: oldp, New: newp, Err: err}
	}
	return nil
}
