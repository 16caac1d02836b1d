package agent

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"golang.org/x/sys/unix"
)

// maxReadFile is the largest file MsgFsReadFile returns in one answer;
// larger files are read through an opened file.
const maxReadFile = ipc.MaxMessageSize - 64

// maxChunk bounds the data of one read answer.
const maxChunk = 4 << 20

// fileInfo converts an os.FileInfo for the wire.
func fileInfo(fi fs.FileInfo) (ipc.FileInfo, ipc.Stat) {
	info := ipc.FileInfo{
		Name:      fi.Name(),
		Size:      fi.Size(),
		Mode:      fi.Mode(),
		ModTime:   fi.ModTime().Unix(),
		IsDir:     fi.IsDir(),
		IsSymlink: fi.Mode()&fs.ModeSymlink != 0,
	}
	var st ipc.Stat
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st = ipc.Stat{
			Uid: s.Uid, Gid: s.Gid, Nlink: uint64(s.Nlink), Ino: s.Ino, Dev: s.Dev, Rdev: s.Rdev, Blocks: s.Blocks,
			AtimeNs: s.Atim.Nano(), MtimeNs: s.Mtim.Nano(), CtimeNs: s.Ctim.Nano(),
		}
	}
	return info, st
}

// infoResponse answers with a FileInfo and its Stat.
func infoResponse(fi fs.FileInfo) *ipc.Response {
	info, st := fileInfo(fi)
	return ok(func(e *ipc.Encoder) {
		ipc.EncodeFileInfo(e, info)
		ipc.EncodeStat(e, st)
	})
}

func (a *agent) registerFS() {
	a.handle(ipc.MsgFsStat, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		fi, err := a.root.info(p, true)
		if err != nil {
			return nil, err
		}
		return infoResponse(fi), nil
	})
	a.handle(ipc.MsgFsLstat, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		fi, err := a.root.info(p, false)
		if err != nil {
			return nil, err
		}
		return infoResponse(fi), nil
	})
	a.handle(ipc.MsgFsReadFile, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		f, err := a.root.open(p, os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxReadFile+1))
		if err != nil {
			return nil, err
		}
		if len(data) > maxReadFile {
			return nil, &fs.PathError{Op: "read", Path: p, Err: syscall.EFBIG}
		}
		return ok(func(e *ipc.Encoder) { e.WriteBytes(data) }), nil
	})
	a.handle(ipc.MsgFsWriteFile, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		data, err := dec.BorrowBytes()
		if err != nil {
			return nil, err
		}
		perm, err := dec.Uint32()
		if err != nil {
			return nil, err
		}
		return ok(nil), a.root.writeFile(p, data, fs.FileMode(perm))
	})
	a.handle(ipc.MsgFsOpenFile, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		flag, err := dec.Int32()
		if err != nil {
			return nil, err
		}
		perm, err := dec.Uint32()
		if err != nil {
			return nil, err
		}
		wantFD, err := dec.Bool()
		if err != nil {
			return nil, err
		}
		return a.open(req, p, int(flag), fs.FileMode(perm), wantFD)
	})
	a.handle(ipc.MsgFsOpen, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		wantFD, _ := dec.Bool()
		return a.open(req, p, os.O_RDONLY, 0, wantFD)
	})
	a.handle(ipc.MsgFsCreate, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		wantFD, _ := dec.Bool()
		return a.open(req, p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666, wantFD)
	})
	pathOp := func(msg uint16, op func(string) error) {
		a.handle(msg, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
			p, err := dec.String()
			if err != nil {
				return nil, err
			}
			return ok(nil), op(p)
		})
	}
	pathOp(ipc.MsgFsRemove, a.root.remove)
	pathOp(ipc.MsgFsRemoveAll, a.root.removeAll)
	modeOp := func(msg uint16, op func(string, fs.FileMode) error) {
		a.handle(msg, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
			p, err := dec.String()
			if err != nil {
				return nil, err
			}
			m, err := dec.Uint32()
			if err != nil {
				return nil, err
			}
			return ok(nil), op(p, fs.FileMode(m))
		})
	}
	modeOp(ipc.MsgFsMkdir, a.root.mkdir)
	modeOp(ipc.MsgFsMkdirAll, a.root.mkdirAll)
	modeOp(ipc.MsgFsChmod, a.root.chmod)
	twoPathOp := func(msg uint16, op func(string, string) error) {
		a.handle(msg, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
			oldp, err := dec.String()
			if err != nil {
				return nil, err
			}
			newp, err := dec.String()
			if err != nil {
				return nil, err
			}
			return ok(nil), op(oldp, newp)
		})
	}
	twoPathOp(ipc.MsgFsRename, a.root.rename)
	twoPathOp(ipc.MsgFsSymlink, a.root.symlink) // a symlink's target is stored as given
	a.handle(ipc.MsgFsReadlink, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		target, err := a.root.readlink(p)
		if err != nil {
			return nil, err
		}
		return ok(func(e *ipc.Encoder) { e.String(target) }), nil
	})
	a.handle(ipc.MsgFsReadDir, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		entries, err := a.root.readDir(p)
		if err != nil {
			return nil, err
		}
		return dirResponse(entries), nil
	})
	a.handle(ipc.MsgFsChown, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		uid, err := dec.Int32()
		if err != nil {
			return nil, err
		}
		gid, err := dec.Int32()
		if err != nil {
			return nil, err
		}
		nofollow, _ := dec.Bool()
		return ok(nil), a.root.chown(p, int(uid), int(gid), nofollow)
	})
	a.handle(ipc.MsgFsChtimes, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		p, err := dec.String()
		if err != nil {
			return nil, err
		}
		atime, err := dec.Int64()
		if err != nil {
			return nil, err
		}
		mtime, err := dec.Int64()
		if err != nil {
			return nil, err
		}
		flags, _ := dec.Uint8()
		ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
		if flags&1 != 0 {
			ts[0] = unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
		if flags&2 != 0 {
			ts[1] = unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
		return ok(nil), a.root.chtimes(p, ts)
	})
}

// dirResponse answers with a count and the entries.
func dirResponse(entries []fs.DirEntry) *ipc.Response {
	return ok(func(e *ipc.Encoder) {
		e.Uint32(uint32(len(entries)))
		for _, de := range entries {
			ipc.EncodeDirEntry(e, ipc.DirEntry{Name: de.Name(), IsDir: de.IsDir(), Mode: de.Type()})
		}
	})
}

// open opens a file and answers with its descriptor when the connection can
// carry it (handle 0), or with a handle for the File* messages.
func (a *agent) open(req *ipc.Request, p string, flag int, perm fs.FileMode, wantFD bool) (*ipc.Response, error) {
	f, err := a.root.open(p, flag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	info, st := fileInfo(fi)
	var h uint64
	var files []*os.File
	if wantFD && req.CanPassDescriptors() && !fi.IsDir() {
		// Directories stay here: their entries are read by the agent,
		// which can stat them in the sandbox.
		files = []*os.File{f} // the server closes the agent's copy once sent
	} else {
		h = a.handles.add(f)
	}
	resp := ok(func(e *ipc.Encoder) {
		e.Uint64(h)
		ipc.EncodeFileInfo(e, info)
		ipc.EncodeStat(e, st)
	})
	resp.Files = files
	return resp, nil
}

func (a *agent) registerFiles() {
	fileOp := func(msg uint16, fn func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error)) {
		handleOn(a, msg, lookup[*os.File], func(_ *ipc.Request, f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
			return fn(f, dec)
		})
	}
	handleOn(a, ipc.MsgFileClose, take[*os.File], func(_ *ipc.Request, f *os.File, _ *ipc.Decoder) (*ipc.Response, error) {
		return ok(nil), f.Close()
	})
	fileOp(ipc.MsgFileRead, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		n, err := dec.Uint32()
		if err != nil {
			return nil, err
		}
		buf := make([]byte, min(int(n), maxChunk))
		k, err := f.Read(buf)
		if k == 0 && len(buf) > 0 {
			if err == nil {
				err = io.EOF
			}
			return nil, err
		}
		return ok(func(e *ipc.Encoder) { e.WriteBytes(buf[:k]) }), nil
	})
	fileOp(ipc.MsgFileReadAt, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		off, err := dec.Int64()
		if err != nil {
			return nil, err
		}
		n, err := dec.Uint32()
		if err != nil {
			return nil, err
		}
		buf := make([]byte, min(int(n), maxChunk))
		k, err := f.ReadAt(buf, off)
		if k < len(buf) && err != nil && !(errors.Is(err, io.EOF) && k > 0) {
			return nil, err
		}
		return ok(func(e *ipc.Encoder) { e.WriteBytes(buf[:k]) }), nil
	})
	fileOp(ipc.MsgFileWrite, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		data, err := dec.BorrowBytes()
		if err != nil {
			return nil, err
		}
		n, err := f.Write(data)
		if err != nil {
			return nil, err
		}
		return ok(func(e *ipc.Encoder) { e.Uint32(uint32(n)) }), nil
	})
	fileOp(ipc.MsgFileWriteAt, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		off, err := dec.Int64()
		if err != nil {
			return nil, err
		}
		data, err := dec.BorrowBytes()
		if err != nil {
			return nil, err
		}
		n, err := f.WriteAt(data, off)
		if err != nil {
			return nil, err
		}
		return ok(func(e *ipc.Encoder) { e.Uint32(uint32(n)) }), nil
	})
	fileOp(ipc.MsgFileSeek, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		off, err := dec.Int64()
		if err != nil {
			return nil, err
		}
		whence, err := dec.Int32()
		if err != nil {
			return nil, err
		}
		pos, err := f.Seek(off, int(whence))
		if err != nil {
			return nil, err
		}
		return ok(func(e *ipc.Encoder) { e.Int64(pos) }), nil
	})
	fileOp(ipc.MsgFileSync, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		return ok(nil), f.Sync()
	})
	fileOp(ipc.MsgFileTruncate, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		size, err := dec.Int64()
		if err != nil {
			return nil, err
		}
		return ok(nil), f.Truncate(size)
	})
	fileOp(ipc.MsgFileStat, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		return infoResponse(fi), nil
	})
	fileOp(ipc.MsgFileName, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		return ok(func(e *ipc.Encoder) { e.String(f.Name()) }), nil
	})
	fileOp(ipc.MsgFileReadDir, func(f *os.File, dec *ipc.Decoder) (*ipc.Response, error) {
		n, err := dec.Int32()
		if err != nil {
			return nil, err
		}
		entries, err := f.ReadDir(int(n))
		if err != nil && !(errors.Is(err, io.EOF) && len(entries) > 0) {
			return nil, err
		}
		return dirResponse(entries), nil
	})
}
