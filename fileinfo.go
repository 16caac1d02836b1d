package sandbox

import (
	"io/fs"
	"path"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// FileStat is what the FileInfo of a sandbox file returns from Sys: its
// metadata as the sandbox sees it (ids are the sandbox's, not the host's).
type FileStat struct {
	Uid, Gid            uint32
	Nlink               uint64
	Ino, Dev, Rdev      uint64
	Blocks              int64
	Atime, Mtime, Ctime time.Time
}

// fileInfo is an fs.FileInfo of a sandbox file.
type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
	stat FileStat
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.stat.Mtime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.stat }
func (fi *fileInfo) String() string     { return fs.FormatFileInfo(fi) }

// newFileInfo builds the fileInfo of the file name names from the wire.
// Its Name is name's last element, as os.Stat's is, whatever the agent
// said: a sandbox's agent may lie, and a host program may join the name
// to a directory of its own.
func newFileInfo(name string, info ipc.FileInfo, st ipc.Stat) *fileInfo {
	return &fileInfo{
		name: path.Base(name),
		size: info.Size,
		mode: info.Mode,
		stat: FileStat{
			Uid: st.Uid, Gid: st.Gid, Nlink: st.Nlink, Ino: st.Ino, Dev: st.Dev, Rdev: st.Rdev, Blocks: st.Blocks,
			Atime: time.Unix(0, st.AtimeNs), Mtime: time.Unix(0, st.MtimeNs), Ctime: time.Unix(0, st.CtimeNs),
		},
	}
}

// dirEntry is an fs.DirEntry of a sandbox directory; Info asks the sandbox.
type dirEntry struct {
	inst *Instance
	dir  string // the directory's sandbox path
	name string
	typ  fs.FileMode
}

func (d *dirEntry) Name() string               { return d.name }
func (d *dirEntry) IsDir() bool                { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode          { return d.typ.Type() }
func (d *dirEntry) String() string             { return fs.FormatDirEntry(d) }
func (d *dirEntry) Info() (fs.FileInfo, error) { return d.inst.Lstat(joinPath(d.dir, d.name)) }

// dirEntries makes the entries of directory dir (a sandbox path) from
// the wire.
func (i *Instance) dirEntries(entries []ipc.DirEntry, dir string) []fs.DirEntry {
	out := make([]fs.DirEntry, len(entries))
	for k, de := range entries {
		out[k] = &dirEntry{inst: i, dir: dir, name: de.Name, typ: de.Mode.Type()}
	}
	return out
}
