package sandbox

import (
	"io/fs"
	"os"
	"syscall"
)

// fdFile is a File backed by the file's own descriptor, passed by the
// agent: its I/O is native.
type fdFile struct {
	f *os.File
}

func (d *fdFile) Read(b []byte) (int, error)                   { return d.f.Read(b) }
func (d *fdFile) ReadAt(b []byte, off int64) (int, error)      { return d.f.ReadAt(b, off) }
func (d *fdFile) Write(b []byte) (int, error)                  { return d.f.Write(b) }
func (d *fdFile) WriteAt(b []byte, off int64) (int, error)     { return d.f.WriteAt(b, off) }
func (d *fdFile) Seek(offset int64, whence int) (int64, error) { return d.f.Seek(offset, whence) }
func (d *fdFile) Sync() error                                  { return d.f.Sync() }
func (d *fdFile) Truncate(size int64) error                    { return d.f.Truncate(size) }
func (d *fdFile) Close() error                                 { return d.f.Close() }

// Stat stats the descriptor on the host, as the sandbox sees it.
func (d *fdFile) Stat(f *File) (fs.FileInfo, error) { return f.inst.fstat(d.f, f.info.name) }

// ReadDir: directories are never passed (the agent reads their entries,
// and can stat them in the sandbox).
func (d *fdFile) ReadDir(*File, int) ([]fs.DirEntry, error) { return nil, syscall.ENOTDIR }
