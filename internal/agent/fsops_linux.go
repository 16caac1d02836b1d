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

// statAns answers with a file's metadata.
func statAns(fi fs.FileInfo) ipc.StatAns {
	info, st := fileInfo(fi)
	return ipc.StatAns{Info: info, Stat: st}
}

func (a *agent) registerFS() {
	ipc.Route(a.mux, ipc.MsgFsStat, func(_ *ipc.Request, m *ipc.PathReq) (ipc.StatAns, error) {
		fi, err := a.root.info(m.Path, true)
		if err != nil {
			return ipc.StatAns{}, err
		}
		return statAns(fi), nil
	})
	ipc.Route(a.mux, ipc.MsgFsLstat, func(_ *ipc.Request, m *ipc.PathReq) (ipc.StatAns, error) {
		fi, err := a.root.info(m.Path, false)
		if err != nil {
			return ipc.StatAns{}, err
		}
		return statAns(fi), nil
	})
	ipc.Route(a.mux, ipc.MsgFsReadFile, func(_ *ipc.Request, m *ipc.PathReq) (ipc.BytesAns, error) {
		f, err := a.root.open(m.Path, os.O_RDONLY, 0)
		if err != nil {
			return ipc.BytesAns{}, err
		}
		defer f.Close()
		// A regular file too large for one answer is refused before any
		// of it is read (the client then asks for a stream).
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > maxReadFile {
			return ipc.BytesAns{}, &fs.PathError{Op: "read", Path: m.Path, Err: syscall.EFBIG}
		}
		data, err := io.ReadAll(io.LimitReader(f, maxReadFile+1))
		if err != nil {
			return ipc.BytesAns{}, err
		}
		if len(data) > maxReadFile {
			return ipc.BytesAns{}, &fs.PathError{Op: "read", Path: m.Path, Err: syscall.EFBIG}
		}
		return ipc.BytesAns{Data: data}, nil
	})
	ipc.Route(a.mux, ipc.MsgFsWriteFile, func(_ *ipc.Request, m *ipc.WriteFileReq) (ipc.Empty, error) {
		return ipc.Empty{}, a.root.writeFile(m.Path, m.Data, m.Perm)
	})
	ipc.Route(a.mux, ipc.MsgFsWriteStream, a.writeStream)
	ipc.Route(a.mux, ipc.MsgFsReadStream, a.readStream)
	ipc.Route(a.mux, ipc.MsgFsOpenFile, func(req *ipc.Request, m *ipc.OpenFileReq) (ipc.OpenAns, error) {
		return a.open(req, m.Path, int(m.Flag), m.Perm, m.WantFD)
	})
	ipc.Route(a.mux, ipc.MsgFsOpen, func(req *ipc.Request, m *ipc.OpenReq) (ipc.OpenAns, error) {
		return a.open(req, m.Path, os.O_RDONLY, 0, m.WantFD)
	})
	ipc.Route(a.mux, ipc.MsgFsCreate, func(req *ipc.Request, m *ipc.OpenReq) (ipc.OpenAns, error) {
		return a.open(req, m.Path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666, m.WantFD)
	})
	pathOp := func(msg uint16, op func(string) error) {
		ipc.Route(a.mux, msg, func(_ *ipc.Request, m *ipc.PathReq) (ipc.Empty, error) {
			return ipc.Empty{}, op(m.Path)
		})
	}
	pathOp(ipc.MsgFsRemove, a.root.remove)
	pathOp(ipc.MsgFsRemoveAll, a.root.removeAll)
	modeOp := func(msg uint16, op func(string, fs.FileMode) error) {
		ipc.Route(a.mux, msg, func(_ *ipc.Request, m *ipc.PathModeReq) (ipc.Empty, error) {
			return ipc.Empty{}, op(m.Path, m.Mode)
		})
	}
	modeOp(ipc.MsgFsMkdir, a.root.mkdir)
	modeOp(ipc.MsgFsMkdirAll, a.root.mkdirAll)
	modeOp(ipc.MsgFsChmod, a.root.chmod)
	twoPathOp := func(msg uint16, op func(string, string) error) {
		ipc.Route(a.mux, msg, func(_ *ipc.Request, m *ipc.PathPairReq) (ipc.Empty, error) {
			return ipc.Empty{}, op(m.Old, m.New)
		})
	}
	twoPathOp(ipc.MsgFsRename, a.root.rename)
	twoPathOp(ipc.MsgFsSymlink, a.root.symlink) // a symlink's target is stored as given
	ipc.Route(a.mux, ipc.MsgFsReadlink, func(_ *ipc.Request, m *ipc.PathReq) (ipc.StringAns, error) {
		target, err := a.root.readlink(m.Path)
		return ipc.StringAns{Value: target}, err
	})
	ipc.Route(a.mux, ipc.MsgFsReadDir, func(_ *ipc.Request, m *ipc.PathReq) (ipc.DirAns, error) {
		entries, err := a.root.readDir(m.Path)
		if err != nil {
			return ipc.DirAns{}, err
		}
		return dirAns(entries), nil
	})
	ipc.Route(a.mux, ipc.MsgFsChown, func(_ *ipc.Request, m *ipc.ChownReq) (ipc.Empty, error) {
		return ipc.Empty{}, a.root.chown(m.Path, int(m.Uid), int(m.Gid), m.NoFollow)
	})
	ipc.Route(a.mux, ipc.MsgFsChtimes, func(_ *ipc.Request, m *ipc.ChtimesReq) (ipc.Empty, error) {
		ts := []unix.Timespec{unix.NsecToTimespec(m.AtimeNs), unix.NsecToTimespec(m.MtimeNs)}
		if m.Flags&ipc.ChtimesKeepAtime != 0 {
			ts[0] = unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
		if m.Flags&ipc.ChtimesKeepMtime != 0 {
			ts[1] = unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
		return ipc.Empty{}, a.root.chtimes(m.Path, ts)
	})
}

// dirAns answers with the entries.
func dirAns(entries []fs.DirEntry) ipc.DirAns {
	out := make([]ipc.DirEntry, len(entries))
	for i, de := range entries {
		out[i] = ipc.DirEntry{Name: de.Name(), IsDir: de.IsDir(), Mode: de.Type()}
	}
	return ipc.DirAns{Entries: out}
}

// open opens a file and answers with its descriptor when the connection can
// carry it (handle 0), or with a handle for the File* messages.
func (a *agent) open(req *ipc.Request, p string, flag int, perm fs.FileMode, wantFD bool) (ipc.OpenAns, error) {
	f, err := a.root.open(p, flag, perm)
	if err != nil {
		return ipc.OpenAns{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return ipc.OpenAns{}, err
	}
	info, st := fileInfo(fi)
	ans := ipc.OpenAns{Info: info, Stat: st}
	if wantFD && req.CanPassDescriptors() && fi.Mode().IsRegular() {
		// Only regular files leave. Directories stay here: their entries
		// are read by the agent, which can stat them in the sandbox. So do
		// devices, pipes and terminals, which the sandbox may link in
		// where the host expects a file: a read of /dev/zero never ends,
		// one of a terminal's master may wait for good, and the host's
		// calls on a descriptor of its own would not end with the sandbox;
		// here they do.
		req.SendFiles(f) // the server closes the agent's copy once sent
	} else {
		ans.Handle = a.handles.add(f)
	}
	return ans, nil
}

func (a *agent) registerFiles() {
	ipc.Route(a.mux, ipc.MsgFileClose, func(_ *ipc.Request, m *ipc.HandleReq) (ipc.Empty, error) {
		f, err := take[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		return ipc.Empty{}, f.Close()
	})
	ipc.Route(a.mux, ipc.MsgFileRead, func(_ *ipc.Request, m *ipc.ReadReq) (ipc.BytesAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.BytesAns{}, err
		}
		buf := make([]byte, min(int(m.Max), maxChunk))
		k, err := f.Read(buf)
		if k == 0 && len(buf) > 0 {
			if err == nil {
				err = io.EOF
			}
			return ipc.BytesAns{}, err
		}
		return ipc.BytesAns{Data: buf[:k]}, nil
	})
	ipc.Route(a.mux, ipc.MsgFileReadAt, func(_ *ipc.Request, m *ipc.ReadAtReq) (ipc.BytesAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.BytesAns{}, err
		}
		buf := make([]byte, min(int(m.Max), maxChunk))
		k, err := f.ReadAt(buf, m.Off)
		if k < len(buf) && err != nil && !(errors.Is(err, io.EOF) && k > 0) {
			return ipc.BytesAns{}, err
		}
		return ipc.BytesAns{Data: buf[:k]}, nil
	})
	ipc.Route(a.mux, ipc.MsgFileWrite, func(_ *ipc.Request, m *ipc.WriteReq) (ipc.CountAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.CountAns{}, err
		}
		n, err := f.Write(m.Data)
		if err != nil {
			return ipc.CountAns{}, err
		}
		return ipc.CountAns{N: uint32(n)}, nil
	})
	ipc.Route(a.mux, ipc.MsgFileWriteAt, func(_ *ipc.Request, m *ipc.WriteAtReq) (ipc.CountAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.CountAns{}, err
		}
		n, err := f.WriteAt(m.Data, m.Off)
		if err != nil {
			return ipc.CountAns{}, err
		}
		return ipc.CountAns{N: uint32(n)}, nil
	})
	ipc.Route(a.mux, ipc.MsgFileSeek, func(_ *ipc.Request, m *ipc.SeekReq) (ipc.SeekAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.SeekAns{}, err
		}
		pos, err := f.Seek(m.Off, int(m.Whence))
		return ipc.SeekAns{Pos: pos}, err
	})
	ipc.Route(a.mux, ipc.MsgFileSync, func(_ *ipc.Request, m *ipc.HandleReq) (ipc.Empty, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		return ipc.Empty{}, f.Sync()
	})
	ipc.Route(a.mux, ipc.MsgFileTruncate, func(_ *ipc.Request, m *ipc.TruncateReq) (ipc.Empty, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.Empty{}, err
		}
		return ipc.Empty{}, f.Truncate(m.Size)
	})
	ipc.Route(a.mux, ipc.MsgFileStat, func(_ *ipc.Request, m *ipc.HandleReq) (ipc.StatAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.StatAns{}, err
		}
		fi, err := f.Stat()
		if err != nil {
			return ipc.StatAns{}, err
		}
		return statAns(fi), nil
	})
	ipc.Route(a.mux, ipc.MsgFileName, func(_ *ipc.Request, m *ipc.HandleReq) (ipc.StringAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.StringAns{}, err
		}
		return ipc.StringAns{Value: f.Name()}, nil
	})
	ipc.Route(a.mux, ipc.MsgFileReadDir, func(_ *ipc.Request, m *ipc.ReadDirReq) (ipc.DirAns, error) {
		f, err := lookup[*os.File](a.handles, m.Handle)
		if err != nil {
			return ipc.DirAns{}, err
		}
		n := int(m.N) // all the rest, for n <= 0, is what the caller reads in batches
		if n <= 0 || n > ipc.MaxDirEntries {
			n = ipc.MaxDirEntries
		}
		entries, err := f.ReadDir(n)
		if errors.Is(err, io.EOF) && m.N <= 0 {
			err = nil // none remain, as os.File.ReadDir(-1) says it
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(entries) > 0) {
			return ipc.DirAns{}, err
		}
		return dirAns(entries), nil
	})
}
