package sandbox

import (
	"errors"
	"io"
	"io/fs"
	"sync"
)

// File is an open file of a sandbox, shaped like *os.File. When the
// connection to the sandbox carries descriptors (the namespace backend),
// File holds a real descriptor and its I/O is native (file_fd.go);
// otherwise each call is a message to the agent, which holds the file
// (file_agent.go). Errors are *fs.PathError naming the file as it was
// opened. A File is safe for concurrent use as *os.File is.
type File struct {
	inst *Instance
	name string    // as the caller gave it
	path string    // the sandbox path
	info *fileInfo // at open
	io   fileIO    // the descriptor or the agent's handle; set once at open

	mu     sync.Mutex
	closed bool // guarded by mu
}

// fileIO is how a File reaches the file: each method returns the error of
// the operation, which File wraps with its name.
type fileIO interface {
	Read(b []byte) (int, error)
	ReadAt(b []byte, off int64) (int, error)
	Write(b []byte) (int, error)
	WriteAt(b []byte, off int64) (int, error)
	Seek(offset int64, whence int) (int64, error)
	Stat(f *File) (fs.FileInfo, error)
	Sync() error
	Truncate(size int64) error
	// ReadDir returns syscall.ENOTDIR for a file that is no directory.
	ReadDir(f *File, n int) ([]fs.DirEntry, error)
	Close() error
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

// wrapErr gives an error the file's name, as os.File does; io.EOF stays
// as it is.
func (f *File) wrapErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return &fs.PathError{Op: op, Path: f.name, Err: f.inst.remoteErr(err)}
}

// checkOpen reports a closed file as os.File does.
func (f *File) checkOpen(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

// Read reads up to len(b) bytes. At end of file it returns 0, io.EOF.
func (f *File) Read(b []byte) (int, error) {
	if err := f.checkOpen("read"); err != nil {
		return 0, err
	}
	n, err := f.io.Read(b)
	return n, f.wrapErr("read", err)
}

// ReadAt reads len(b) bytes at offset off; fewer only with an error
// (io.EOF at end of file).
func (f *File) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errors.New("negative offset")}
	}
	if err := f.checkOpen("read"); err != nil {
		return 0, err
	}
	n, err := f.io.ReadAt(b, off)
	return n, f.wrapErr("read", err)
}

// Write writes b, all of it unless there is an error.
func (f *File) Write(b []byte) (int, error) {
	if err := f.checkOpen("write"); err != nil {
		return 0, err
	}
	n, err := f.io.Write(b)
	return n, f.wrapErr("write", err)
}

// WriteAt writes b at offset off.
func (f *File) WriteAt(b []byte, off int64) (int, error) {
	if err := f.checkOpen("write"); err != nil {
		return 0, err
	}
	n, err := f.io.WriteAt(b, off)
	return n, f.wrapErr("write", err)
}

// Seek sets the offset for the next Read or Write, as os.File.Seek does.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	if err := f.checkOpen("seek"); err != nil {
		return 0, err
	}
	n, err := f.io.Seek(offset, whence)
	return n, f.wrapErr("seek", err)
}

// Stat returns the file's FileInfo; ids are the sandbox's.
func (f *File) Stat() (fs.FileInfo, error) {
	if err := f.checkOpen("stat"); err != nil {
		return nil, err
	}
	fi, err := f.io.Stat(f)
	if err != nil {
		return nil, f.wrapErr("stat", err)
	}
	return fi, nil
}

// Sync commits the file's content to stable storage.
func (f *File) Sync() error {
	if err := f.checkOpen("sync"); err != nil {
		return err
	}
	return f.wrapErr("sync", f.io.Sync())
}

// Truncate changes the file's size.
func (f *File) Truncate(size int64) error {
	if err := f.checkOpen("truncate"); err != nil {
		return err
	}
	return f.wrapErr("truncate", f.io.Truncate(size))
}

// ReadDir reads the directory's entries, as os.File.ReadDir does: with
// n > 0 at most n entries and io.EOF at the end; with n <= 0 all the
// rest, up to 4 Mi entries (an error matching syscall.EFBIG beyond).
func (f *File) ReadDir(n int) ([]fs.DirEntry, error) {
	if err := f.checkOpen("readdir"); err != nil {
		return nil, err
	}
	entries, err := f.io.ReadDir(f, n)
	if err != nil {
		return nil, f.wrapErr("readdir", err)
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
	return f.wrapErr("close", f.io.Close())
}
