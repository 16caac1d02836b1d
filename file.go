package sandbox

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// File is an open file of a sandbox, shaped like *os.File. When the
// connection to the sandbox carries descriptors (the namespace backend),
// File holds a real descriptor and its I/O is native; otherwise each call
// is a message to the agent. Errors are *fs.PathError naming the file as
// it was opened. A File is safe for concurrent use as *os.File is.
type File struct {
	inst   *Instance
	name   string    // as the caller gave it
	path   string    // the sandbox path
	f      *os.File  // the descriptor, or nil
	handle uint64    // the agent's handle, when f is nil
	info   *fileInfo // at open

	mu     sync.Mutex
	closed bool // guarded by mu
}

var (
	_ fs.File        = (*File)(nil)
	_ fs.ReadDirFile = (*File)(nil)
	_ io.ReaderAt    = (*File)(nil)
	_ io.WriterAt    = (*File)(nil)
	_ io.Seeker      = (*File)(nil)
)

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

// wrapErr gives an error the file's name, as os.File does.
func (f *File) wrapErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &fs.PathError{Op: op, Path: f.name, Err: f.inst.remoteErr(err)}
}

// isClosed reports a closed file as os.File does.
func (f *File) checkOpen(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

// call sends a handle-based request.
func (f *File) call(op string, msg uint16, enc func(*ipc.Encoder)) (*ipc.Decoder, error) {
	if err := f.checkOpen(op); err != nil {
		return nil, err
	}
	dec, err := f.inst.call(op, f.name, msg, func(e *ipc.Encoder) {
		e.Uint64(f.handle)
		if enc != nil {
			enc(e)
		}
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	return dec, nil
}

// maxIO bounds the data of one message.
const maxIO = 4 << 20

// Read reads up to len(b) bytes. At end of file it returns 0, io.EOF.
func (f *File) Read(b []byte) (int, error) {
	if f.f != nil {
		n, err := f.f.Read(b)
		return n, f.wrapErr("read", err)
	}
	if len(b) == 0 {
		return 0, f.checkOpen("read")
	}
	dec, err := f.call("read", ipc.MsgFileRead, func(e *ipc.Encoder) { e.Uint32(uint32(min(len(b), maxIO))) })
	if err != nil {
		return 0, err
	}
	data, err := dec.BorrowBytes()
	if err != nil {
		return 0, f.wrapErr("read", err)
	}
	return copy(b, data), nil
}

// ReadAt reads len(b) bytes at offset off; fewer only with an error
// (io.EOF at end of file).
func (f *File) ReadAt(b []byte, off int64) (int, error) {
	if f.f != nil {
		n, err := f.f.ReadAt(b, off)
		return n, f.wrapErr("read", err)
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errors.New("negative offset")}
	}
	n := 0
	for n < len(b) {
		dec, err := f.call("read", ipc.MsgFileReadAt, func(e *ipc.Encoder) {
			e.Int64(off + int64(n))
			e.Uint32(uint32(min(len(b)-n, maxIO)))
		})
		if err != nil {
			return n, err
		}
		data, err := dec.BorrowBytes()
		if err != nil {
			return n, f.wrapErr("read", err)
		}
		n += copy(b[n:], data)
		if len(data) == 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

// Write writes b, all of it unless there is an error.
func (f *File) Write(b []byte) (int, error) {
	if f.f != nil {
		n, err := f.f.Write(b)
		return n, f.wrapErr("write", err)
	}
	n := 0
	for n < len(b) || len(b) == 0 {
		chunk := b[n:min(len(b), n+maxIO)]
		dec, err := f.call("write", ipc.MsgFileWrite, func(e *ipc.Encoder) { e.WriteBytes(chunk) })
		if err != nil {
			return n, err
		}
		k, err := dec.Uint32()
		if err != nil {
			return n, f.wrapErr("write", err)
		}
		n += int(k)
		if len(b) == 0 {
			break
		}
	}
	return n, nil
}

// WriteAt writes b at offset off.
func (f *File) WriteAt(b []byte, off int64) (int, error) {
	if f.f != nil {
		n, err := f.f.WriteAt(b, off)
		return n, f.wrapErr("write", err)
	}
	n := 0
	for n < len(b) {
		chunk := b[n:min(len(b), n+maxIO)]
		dec, err := f.call("write", ipc.MsgFileWriteAt, func(e *ipc.Encoder) {
			e.Int64(off + int64(n))
			e.WriteBytes(chunk)
		})
		if err != nil {
			return n, err
		}
		k, err := dec.Uint32()
		if err != nil {
			return n, f.wrapErr("write", err)
		}
		n += int(k)
	}
	return n, nil
}

// Seek sets the offset for the next Read or Write, as os.File.Seek does.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	if f.f != nil {
		n, err := f.f.Seek(offset, whence)
		return n, f.wrapErr("seek", err)
	}
	dec, err := f.call("seek", ipc.MsgFileSeek, func(e *ipc.Encoder) { e.Int64(offset); e.Int32(int32(whence)) })
	if err != nil {
		return 0, err
	}
	return dec.Int64()
}

// Stat returns the file's FileInfo; ids are the sandbox's.
func (f *File) Stat() (fs.FileInfo, error) {
	if f.f != nil {
		if err := f.checkOpen("stat"); err != nil {
			return nil, err
		}
		fi, err := f.inst.fstat(f.f, f.info.name)
		return fi, f.wrapErr("stat", err)
	}
	dec, err := f.call("stat", ipc.MsgFileStat, nil)
	if err != nil {
		return nil, err
	}
	fi, err := decodeFileInfo(dec)
	if err != nil {
		return nil, f.wrapErr("stat", err)
	}
	fi.name = f.info.name
	return fi, nil
}

// Sync commits the file's content to stable storage.
func (f *File) Sync() error {
	if f.f != nil {
		return f.wrapErr("sync", f.f.Sync())
	}
	_, err := f.call("sync", ipc.MsgFileSync, nil)
	return err
}

// Truncate changes the file's size.
func (f *File) Truncate(size int64) error {
	if f.f != nil {
		return f.wrapErr("truncate", f.f.Truncate(size))
	}
	_, err := f.call("truncate", ipc.MsgFileTruncate, func(e *ipc.Encoder) { e.Int64(size) })
	return err
}

// ReadDir reads the directory's entries, as os.File.ReadDir does: with
// n > 0 at most n entries and io.EOF at the end; with n <= 0 all the rest.
func (f *File) ReadDir(n int) ([]fs.DirEntry, error) {
	if f.f != nil || !f.info.IsDir() {
		if err := f.checkOpen("readdir"); err != nil {
			return nil, err
		}
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: syscall.ENOTDIR}
	}
	dec, err := f.call("readdir", ipc.MsgFileReadDir, func(e *ipc.Encoder) { e.Int32(int32(n)) })
	if err != nil {
		return nil, err
	}
	entries, err := f.inst.decodeDirEntries(dec, f.path)
	if err != nil {
		return nil, f.wrapErr("readdir", err)
	}
	if n > 0 && len(entries) == 0 {
		return nil, io.EOF
	}
	return entries, nil
}

// Close closes the file. Closing twice returns an error matching
// fs.ErrClosed, as os.File does.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	f.mu.Unlock()
	if f.f != nil {
		return f.wrapErr("close", f.f.Close())
	}
	_, err := f.inst.call("close", f.name, ipc.MsgFileClose, func(e *ipc.Encoder) { e.Uint64(f.handle) })
	if err != nil && errors.Is(err, ErrNotRunning) {
		return nil // the sandbox is gone, and the file with it
	}
	return err
}
