package fsutil

import (
	"io/fs"
	"os"
	"path/filepath"
)

// WriteAtomic makes the file at path all at once: write fills a new
// temporary file in the same directory (open for reading and writing),
// which then gets mode perm, is fsynced, renamed over path, and the
// directory fsynced, so that readers see the old file or the whole new
// one, also after a crash. On any failure the temporary file is removed
// and path is left as it was; the error is write's or the file system's.
func WriteAtomic(path string, perm fs.FileMode, write func(f *os.File) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, so that renames into it are durable.
func SyncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
