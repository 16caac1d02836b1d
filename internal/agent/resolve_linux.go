package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/fsutil"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"golang.org/x/sys/unix"
)

// The agent's own path resolution. The agent resolves the paths of the
// host's calls inside the sandbox, whose code may change any path at any
// moment, and it is PID 1 there: /proc/self and /proc/1 are the agent, and
// their fd/N, cwd, root and exe entries are magic links to its own
// descriptors and directories. So every path is resolved by the kernel,
// with openat2 from a descriptor of the root: RESOLVE_IN_ROOT keeps
// absolute symlinks and ".." inside it, RESOLVE_NO_MAGICLINKS refuses
// every magic link (ELOOP), so no symlink the sandbox plants can hand the
// agent one of its descriptors. Each operation then acts on the descriptor
// it got, or on one name inside a resolved directory; a path string is
// never resolved a second time.
//
// Calls that act on a name (remove, rename, mkdir, symlink, readlink)
// resolve the directory that holds it and act on the name there: a
// trailing slash then asks for a directory and follows no symlink, and a
// final "." or ".." is left to the kernel, which refuses to remove or
// rename it. Calls that act on a file (stat, open, chmod, chown, chtimes)
// resolve the whole path. Where a path-taking call must act on a resolved
// descriptor (chmod, utimensat), it is named by /proc/self/fd/N, the
// agent's own descriptor, on the sandbox's procfs, which no process of the
// sandbox can unmount or cover (the seccomp filter denies every mount
// call).

// root is the sandbox's root as the agent resolves paths in it.
type root struct {
	fd int // an O_PATH descriptor of "/"
}

// openRoot opens the calling process's root.
func openRoot() (*root, error) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the root: %w", err)
	}
	return &root{fd: fd}, nil
}

// resolveRetries bounds the retries of a resolution that a concurrent
// rename or mount interrupted (EAGAIN).
const resolveRetries = 64

// openat2 opens p, a sandbox path, with flags; mode is used only when a
// file is created. Descriptors are close-on-exec, and a terminal opened
// never becomes the agent's controlling terminal.
func (r *root) openat2(p string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC
	if flags&unix.O_PATH == 0 {
		flags |= unix.O_NOCTTY // openat2 takes no other flag with O_PATH
	}
	how := &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&(unix.O_CREAT|unix.O_TMPFILE) != 0 {
		how.Mode = uint64(mode)
	}
	var err error
	for range resolveRetries {
		var fd int
		fd, err = unix.Openat2(r.fd, sandboxPath(p), how)
		if err == nil {
			write := flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_TRUNC|unix.O_CREAT) != 0
			if flags&unix.O_PATH == 0 && agentProcFile(fd, "", write) {
				unix.Close(fd)
				return -1, unix.EACCES
			}
			return fd, nil
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	return -1, err
}

// agentProcFile reports whether fd, or the name inside it when name is
// not empty, is one of the agent's own procfs files that no host call
// may reach: anything under /proc/1 (which /proc/self names for the
// agent) or /proc/TID of one of its threads, except the few files any
// process of the sandbox may read of any other, read only (see
// agentProcReadable). Their content is the agent's, not the sandbox's
// (its memory in mem, its environment, its descriptors), and a symlink
// the sandbox plants (to /proc/1/mem, say) must not make a host call read
// or write them. The check is on the opened descriptor: the kernel's
// name for it, on the procfs the agent mounted at /proc, which the
// sandbox cannot unmount or cover. A procfs file whose name the agent
// cannot read is refused too.
func agentProcFile(fd int, name string, write bool) bool {
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil || sfs.Type != unix.PROC_SUPER_MAGIC {
		return false
	}
	p, err := os.Readlink(fdPath(fd))
	if err != nil {
		return true
	}
	if name != "" {
		p += "/" + name
	}
	if p == "/proc" {
		return false
	}
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return true
	}
	parts := strings.Split(rest, "/")
	if _, err := strconv.Atoi(parts[0]); err != nil {
		return false // /proc/meminfo, /proc/sys/...: the kernel's, not a task's
	}
	if !agentTask(parts[0]) {
		return false
	}
	if write {
		return true
	}
	parts = parts[1:]
	if len(parts) >= 2 && parts[0] == "task" {
		parts = parts[2:] // /proc/1/task/TID/...: a thread's own
	}
	switch {
	case len(parts) == 0, len(parts) == 1 && parts[0] == "task":
		return false // a directory of the agent's: its list of names
	default:
		return !agentProcReadable[parts[0]]
	}
}

// agentProcReadable holds the names under a task's procfs directory
// that any process may read of any other, no ptrace access needed, and
// that the host may therefore read of the agent: the kernel's symlinks
// /proc/net and /proc/mounts name /proc/self/net and /proc/self/mounts,
// which are the agent's as PID 1, and they describe the sandbox's own
// network and mounts.
var agentProcReadable = map[string]bool{
	"cmdline": true, "comm": true, "stat": true, "statm": true, "status": true,
	"net": true, "mounts": true, "mountinfo": true, "mountstats": true,
	"cgroup": true, "limits": true, "uid_map": true, "gid_map": true, "setgroups": true,
	"oom_score": true, "oom_score_adj": true,
}

// agentTask reports whether pid, a decimal number, is the agent's
// process or one of its threads.
func agentTask(pid string) bool {
	if pid == strconv.Itoa(os.Getpid()) {
		return true
	}
	var st unix.Stat_t
	return unix.Stat("/proc/self/task/"+pid, &st) == nil
}

// pathErr wraps a failed operation's errno as os does.
func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// info returns the FileInfo of the file at p (its final symlink followed
// when follow is set).
func (r *root) info(p string, follow bool) (fs.FileInfo, error) {
	flags := unix.O_PATH
	op := "stat"
	if !follow {
		flags |= unix.O_NOFOLLOW
		op = "lstat"
	}
	fd, err := r.openat2(p, flags, 0)
	if err != nil {
		return nil, pathErr(op, p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return f.Stat()
}

// stat returns the unix.Stat_t of the file at p, its final symlink
// followed.
func (r *root) stat(p string) (*unix.Stat_t, error) {
	fd, err := r.openat2(p, unix.O_PATH, 0)
	if err != nil {
		return nil, pathErr("stat", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, pathErr("stat", p, err)
	}
	return &st, nil
}

// open opens the file at p as os.OpenFile does.
func (r *root) open(p string, flag int, perm fs.FileMode) (*os.File, error) {
	fd, err := r.openat2(p, flag, fsutil.UnixPerm(perm))
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG, unix.S_IFDIR:
		default:
			// A pipe, a terminal or a device: non-blocking, so that the
			// runtime polls it and Close interrupts a blocked read, as
			// for a file os.OpenFile opened.
			unix.SetNonblock(fd, true)
		}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// writeFile writes data to the file at p as os.WriteFile does.
func (r *root) writeFile(p string, data []byte, perm fs.FileMode) error {
	f, err := r.open(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err1 := f.Close(); err == nil {
		err = err1
	}
	return err
}

// readDir returns the entries of the directory at p, sorted by name, as
// os.ReadDir does.
func (r *root) readDir(p string) ([]fs.DirEntry, error) {
	fd, err := r.openat2(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	// Named by its descriptor: where the file system gives no entry types,
	// os stats each entry by its directory's name and the entry's.
	f := os.NewFile(uintptr(fd), fdPath(fd))
	defer f.Close()
	// A directory of more than one answer's entries is the caller's to
	// read in batches (MsgFileReadDir): the agent holds one at a time.
	entries, err := f.ReadDir(ipc.MaxDirEntries + 1)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if len(entries) > ipc.MaxDirEntries {
		return nil, pathErr("readdirent", p, syscall.EFBIG)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	if err != nil {
		return entries, pathErr("readdirent", p, errors.Unwrap(err))
	}
	return entries, nil
}

// entry resolves the directory holding the last name of p and returns a
// descriptor of it (the caller closes it) and that name. A trailing slash
// asks for a directory: when dirOnly is set and the name exists, it must be
// a directory itself, not a symlink to one (ENOTDIR otherwise). The root
// itself is the name "." in the root.
func (r *root) entry(op, p string, dirOnly bool) (int, string, error) {
	p = sandboxPath(p)
	trimmed := strings.TrimRight(p, "/")
	dir, name := "/", "."
	if trimmed != "" {
		i := strings.LastIndexByte(trimmed, '/')
		dir, name = trimmed[:i+1], trimmed[i+1:]
	}
	fd, err := r.openat2(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", pathErr(op, p, err)
	}
	if dirOnly && len(trimmed) < len(p) {
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(fd)
			return -1, "", pathErr(op, p, unix.ENOTDIR)
		}
	}
	return fd, name, nil
}

// remove removes the file or empty directory at p as os.Remove does.
func (r *root) remove(p string) error {
	dfd, name, err := r.entry("remove", p, true)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	e := unix.Unlinkat(dfd, name, 0)
	if e == nil {
		return nil
	}
	e1 := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
	if e1 == nil {
		return nil
	}
	// rmdir of a file says ENOTDIR: then unlink's error is the real one.
	if e1 != unix.ENOTDIR {
		e = e1
	}
	return pathErr("remove", p, e)
}

// removeAll removes p and everything below it as os.RemoveAll does. The
// guard works on what p resolves to, not on how it is spelt: whatever
// names the sandbox's root ("/", "//", "../..", "/tmp/..", "/link/" for a
// link to "/") is refused with EBUSY, and a final "." or ".." with EINVAL.
// A symlink is removed, never followed.
func (r *root) removeAll(p string) error {
	fd, err := r.openat2(p, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err == nil {
		same := sameFile(fd, r.fd)
		unix.Close(fd)
		if same {
			return pathErr("removeall", p, unix.EBUSY)
		}
	}
	dfd, name, err := r.entry("removeall", p, true)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if name == "." || name == ".." {
		return pathErr("removeall", p, unix.EINVAL)
	}
	// os.Root removes a tree by descriptors, never following a symlink; it
	// opens the resolved directory through the agent's own descriptor.
	dir, err := os.OpenRoot(fdPath(dfd))
	if err != nil {
		return pathErr("removeall", p, errors.Unwrap(err))
	}
	defer dir.Close()
	if err := dir.RemoveAll(name); err != nil {
		return pathErr("removeall", p, rootErrno(err))
	}
	return nil
}

// rootErrno returns the errno inside an error of os.Root, or err.
func rootErrno(err error) error {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return err
}

// sameFile reports whether two descriptors name the same file.
func sameFile(a, b int) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(a, &sa) != nil || unix.Fstat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// mkdir creates the directory p as os.Mkdir does.
func (r *root) mkdir(p string, perm fs.FileMode) error {
	dfd, name, err := r.entry("mkdir", p, false)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return pathErr("mkdir", p, unix.Mkdirat(dfd, name, fsutil.UnixPerm(perm)))
}

// mkdirAll creates p and the directories above it that are missing, as
// os.MkdirAll does: one name at a time, each in its resolved parent.
func (r *root) mkdirAll(p string, perm fs.FileMode) error {
	p = sandboxPath(p)
	prefix := ""
	for _, name := range strings.Split(p, "/") {
		if name == "" || name == "." {
			continue
		}
		prefix += "/" + name
		if name == ".." {
			continue
		}
		fd, err := r.openat2(prefix, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return pathErr("mkdir", p, err)
		}
		if err := r.mkdir(prefix, perm); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return nil
}

// rename renames oldp to newp as os.Rename does, which will not replace a
// directory.
func (r *root) rename(oldp, newp string) error {
	odfd, oname, err := r.entry("rename", oldp, true)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldp, New: newp, Err: errors.Unwrap(err)}
	}
	defer unix.Close(odfd)
	ndfd, nname, err := r.entry("rename", newp, true)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldp, New: newp, Err: errors.Unwrap(err)}
	}
	defer unix.Close(ndfd)
	var nst, ost unix.Stat_t
	if unix.Fstatat(ndfd, nname, &nst, unix.AT_SYMLINK_NOFOLLOW) == nil && nst.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := unix.Fstatat(odfd, oname, &ost, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.LinkError{Op: "rename", Old: oldp, New: newp, Err: err}
		}
		if nst.Dev != ost.Dev || nst.Ino != ost.Ino {
			return &os.LinkError{Op: "rename", Old: oldp, New: newp, Err: unix.EEXIST}
		}
	}
	if err := unix.Renameat(odfd, oname, ndfd, nname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldp, New: newp, Err: err}
	}
	return nil
}

// symlink creates newp as a symlink to target, stored as given.
func (r *root) symlink(target, newp string) error {
	dfd, name, err := r.entry("symlink", newp, false)
	if err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: newp, Err: errors.Unwrap(err)}
	}
	defer unix.Close(dfd)
	if err := unix.Symlinkat(target, dfd, name); err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: newp, Err: err}
	}
	return nil
}

// readlink returns the target of the symlink p.
func (r *root) readlink(p string) (string, error) {
	dfd, name, err := r.entry("readlink", p, true)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	if agentProcFile(dfd, name, false) { // the agent's fd/N, cwd and exe links name its own files
		return "", pathErr("readlink", p, unix.EACCES)
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", pathErr("readlink", p, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// chmod changes the mode of the file at p, its final symlink followed.
func (r *root) chmod(p string, mode fs.FileMode) error {
	fd, err := r.openat2(p, unix.O_PATH, 0)
	if err != nil {
		return pathErr("chmod", p, err)
	}
	defer unix.Close(fd)
	return pathErr("chmod", p, unix.Chmod(fdPath(fd), fsutil.UnixPerm(mode)))
}

// chown changes the owner of the file at p; of a final symlink itself
// when nofollow is set.
func (r *root) chown(p string, uid, gid int, nofollow bool) error {
	flags, op := unix.O_PATH, "chown"
	if nofollow {
		flags, op = unix.O_PATH|unix.O_NOFOLLOW, "lchown"
	}
	fd, err := r.openat2(p, flags, 0)
	if err != nil {
		return pathErr(op, p, err)
	}
	defer unix.Close(fd)
	return pathErr(op, p, unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH))
}

// chtimes sets the access and modification times of the file at p, its
// final symlink followed.
func (r *root) chtimes(p string, ts []unix.Timespec) error {
	fd, err := r.openat2(p, unix.O_PATH, 0)
	if err != nil {
		return pathErr("chtimes", p, err)
	}
	defer unix.Close(fd)
	return pathErr("chtimes", p, unix.UtimesNanoAt(unix.AT_FDCWD, fdPath(fd), ts, 0))
}
