package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// agentFile is a File the agent holds by handle (the streamed path): each
// call is a message.
type agentFile struct {
	inst   *Instance
	handle uint64
}

// maxIO bounds the data of one message.
const maxIO = 4 << 20

// callErr turns the agent's io.EOF into io.EOF itself, as readers expect.
func callErr(err error) error {
	if err != nil && errors.Is(err, io.EOF) {
		return io.EOF
	}
	return err
}

func (a *agentFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	data, err := a.inst.agent.FileRead(context.Background(), a.handle, uint32(min(len(b), maxIO)))
	if err != nil {
		return 0, callErr(err)
	}
	return copy(b, data), nil
}

func (a *agentFile) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		data, err := a.inst.agent.FileReadAt(context.Background(), a.handle, off+int64(n), uint32(min(len(b)-n, maxIO)))
		if err != nil {
			return n, callErr(err)
		}
		n += copy(b[n:], data)
		if len(data) == 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

func (a *agentFile) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) || len(b) == 0 {
		k, err := a.inst.agent.FileWrite(context.Background(), a.handle, b[n:min(len(b), n+maxIO)])
		if err != nil {
			return n, err
		}
		n += k
		if len(b) == 0 {
			break
		}
	}
	return n, nil
}

func (a *agentFile) WriteAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		k, err := a.inst.agent.FileWriteAt(context.Background(), a.handle, off+int64(n), b[n:min(len(b), n+maxIO)])
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

func (a *agentFile) Seek(offset int64, whence int) (int64, error) {
	return a.inst.agent.FileSeek(context.Background(), a.handle, offset, whence)
}

func (a *agentFile) Stat(f *File) (fs.FileInfo, error) {
	ans, err := a.inst.agent.FileStat(context.Background(), a.handle)
	if err != nil {
		return nil, err
	}
	return newFileInfo(f.info.name, ans.Info, ans.Stat), nil
}

func (a *agentFile) Sync() error { return a.inst.agent.FileSync(context.Background(), a.handle) }

func (a *agentFile) Truncate(size int64) error {
	return a.inst.agent.FileTruncate(context.Background(), a.handle, size)
}

func (a *agentFile) ReadDir(f *File, n int) ([]fs.DirEntry, error) {
	if !f.info.IsDir() {
		return nil, syscall.ENOTDIR
	}
	if n > 0 {
		entries, err := a.inst.agent.FileReadDir(context.Background(), a.handle, n)
		if err != nil {
			return nil, callErr(err)
		}
		if len(entries) == 0 {
			return nil, io.EOF
		}
		return f.inst.dirEntries(entries, f.path), nil
	}
	// All the rest: the agent answers a batch at a time, each full but
	// the last, up to maxDirRead entries in all.
	var all []ipc.DirEntry
	for {
		if len(all) >= maxDirRead {
			return nil, fmt.Errorf("more than %d entries: %w (read them n at a time)", maxDirRead, syscall.EFBIG)
		}
		entries, err := a.inst.agent.FileReadDir(context.Background(), a.handle, n)
		if err != nil {
			if err = callErr(err); errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		all = append(all, entries...)
		if len(entries) < ipc.MaxDirEntries {
			break
		}
	}
	return f.inst.dirEntries(all, f.path), nil
}

// Close releases the agent's handle; a sandbox that is gone took the file
// with it.
func (a *agentFile) Close() error {
	err := a.inst.agent.FileClose(context.Background(), a.handle)
	if err != nil && errors.Is(a.inst.remoteErr(err), ErrNotRunning) {
		return nil
	}
	return err
}
