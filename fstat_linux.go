package sandbox

import (
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fstat stats a descriptor of a sandbox file on the host and reports it as
// the sandbox sees it: ids converted back through the instance's id map.
func (i *Instance) fstat(f *os.File, name string) (fs.FileInfo, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	uid, ok := i.ids.ContainerUID(st.Uid)
	if !ok {
		uid = 65534 // unmapped ids show as nobody, as the kernel shows them
	}
	gid, ok := i.ids.ContainerGID(st.Gid)
	if !ok {
		gid = 65534
	}
	return &fileInfo{
		name: name,
		size: st.Size,
		mode: unixMode(st.Mode),
		stat: FileStat{
			Uid: uid, Gid: gid, Nlink: uint64(st.Nlink), Ino: st.Ino, Dev: st.Dev, Rdev: st.Rdev, Blocks: st.Blocks,
			Atime: time.Unix(st.Atim.Unix()), Mtime: time.Unix(st.Mtim.Unix()), Ctime: time.Unix(st.Ctim.Unix()),
		},
	}, nil
}

// unixMode converts a st_mode into an fs.FileMode, as the os package does.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
