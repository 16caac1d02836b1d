package sandbox

import (
	"io/fs"
	"os"
	"time"

	"github.com/ccsandbox/sandbox/internal/fsutil"
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
		mode: fsutil.FileMode(st.Mode),
		stat: FileStat{
			Uid: uid, Gid: gid, Nlink: uint64(st.Nlink), Ino: st.Ino, Dev: st.Dev, Rdev: st.Rdev, Blocks: st.Blocks,
			Atime: time.Unix(st.Atim.Unix()), Mtime: time.Unix(st.Mtim.Unix()), Ctime: time.Unix(st.Ctim.Unix()),
		},
	}, nil
}
