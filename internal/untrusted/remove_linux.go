package untrusted

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxRemoveDepth bounds the directories RemoveAll holds open at once: a
// sandbox can nest directories far deeper than the descriptors a process
// may have, so deeper ones are moved up to the top of the tree and removed
// from there.
const maxRemoveDepth = 64

// RemoveAll removes root and everything under it, as os.RemoveAll does,
// where the sandbox may still be writing the tree: every entry is reached
// through its directory's descriptor and no link is followed. Without root,
// directories the caller owns but may not read or write (a sandbox's chmod
// 000, overlayfs's work directory) are opened up first. root is a host
// path the caller made; a missing root is no error. It returns the first
// error met, after removing what it could.
func RemoveAll(root string) error {
	root = filepath.Clean(root)
	parent, err := Open(filepath.Dir(root))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer parent.Close()
	return parent.removeAll(filepath.Base(root), root)
}

// RemoveAllAt removes the entry name (one path component) of the open
// directory dir and everything under it, as RemoveAll does root: dir is
// reached by its descriptor, not by a path; a missing entry is no error.
func RemoveAllAt(dir *os.File, name string) error {
	fd, err := unix.FcntlInt(dir.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	parent := &Dir{fd: fd, path: dir.Name()}
	defer parent.Close()
	return parent.removeAll(name, filepath.Join(dir.Name(), name))
}

// removeAll removes d's entry name and what it holds; shown names it in
// errors.
func (d *Dir) removeAll(name, shown string) error {
	n, err := d.Lookup(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.Type() != unix.S_IFDIR {
		n.Close()
		return d.unlink(name, 0)
	}
	top, err := n.openForRemoval()
	n.Close()
	if err != nil {
		return err
	}
	defer top.Close()
	r := &remover{top: top}
	if err := r.removeContents(top, 0); err != nil {
		return fmt.Errorf("removing %s: %w", shown, err)
	}
	// Directories moved up to the top while the rest was removed.
	for len(r.moved) > 0 {
		next := r.moved[0]
		r.moved = r.moved[1:]
		if err := r.removeEntry(top, next, 0); err != nil {
			return fmt.Errorf("removing %s: %w", shown, err)
		}
	}
	if err := d.unlink(name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("removing %s: %w", shown, err)
	}
	return nil
}

// remover removes one tree.
type remover struct {
	top   *Dir     // the tree's root, where deep directories are moved
	moved []string // names of those directories in top
	seq   int
}

// removeContents removes every entry of d, which is depth levels below top.
func (r *remover) removeContents(d *Dir, depth int) error {
	names, err := d.Names()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := r.removeEntry(d, name, depth); err != nil {
			return err
		}
	}
	return nil
}

// removeEntry removes the entry name of d and, for a directory, what is in
// it.
func (r *remover) removeEntry(d *Dir, name string, depth int) error {
	err := unix.Unlinkat(d.fd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return d.err("unlink", name, err)
	}
	if depth+1 >= maxRemoveDepth {
		r.seq++
		moved := ".cc-remove-" + strconv.Itoa(r.seq)
		if err := unix.Renameat(d.fd, name, r.top.fd, moved); err != nil {
			return d.err("rename", name, err)
		}
		r.moved = append(r.moved, moved)
		return nil
	}
	n, err := d.Lookup(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.Type() != unix.S_IFDIR { // replaced meanwhile
		n.Close()
		return d.unlink(name, 0)
	}
	sub, err := n.openForRemoval()
	n.Close()
	if err != nil {
		return err
	}
	err = r.removeContents(sub, depth+1)
	sub.Close()
	if err != nil {
		return err
	}
	return d.unlink(name, unix.AT_REMOVEDIR)
}

// unlink removes the entry name of d; a missing one is no error.
func (d *Dir) unlink(name string, flags int) error {
	if err := unix.Unlinkat(d.fd, name, flags); err != nil && !errors.Is(err, unix.ENOENT) {
		return d.err("unlink", name, err)
	}
	return nil
}

// openForRemoval opens the entry, a directory, to remove what is in it:
// without root, a directory the caller owns gets rwx for its owner first.
func (n *Node) openForRemoval() (*Dir, error) {
	if os.Geteuid() != 0 && n.st.Uid == uint32(os.Geteuid()) && n.st.Mode&0o700 != 0o700 {
		if err := unix.Chmod(fdPath(n.fd), n.st.Mode&0o7777|0o700); err != nil {
			return nil, n.err("chmod", err)
		}
	}
	return n.OpenDir()
}
