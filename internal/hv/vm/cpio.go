package vm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes an archive in the "newc" format (SVR4 portable ASCII
// without checksums), the one the Linux kernel unpacks as an initramfs.
// Each entry is a 110-byte header of hexadecimal fields, the NUL-terminated
// name, and the data, each padded to four bytes. Entries are written in the
// order given; a directory must come before what it holds. Owners are
// root, times are zero: the archive depends on its content alone.
type cpioWriter struct {
	w      *bufio.Writer
	ino    uint32
	closed bool
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1}
}

// Mode bits of cpio entries (the kernel's S_IF* values).
const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
)

// cpioTrailer is the name of the entry that ends an archive.
const cpioTrailer = "TRAILER!!!"

// maxCPIOSize is the largest file a newc header can describe.
const maxCPIOSize = 1<<32 - 1

// cpioHeaderSize is the size of a newc header before the name.
const cpioHeaderSize = 110

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) error {
	return c.header(name, cpioDir|perm&0o7777, 0, 2)
}

// Symlink adds a symbolic link name pointing to target.
func (c *cpioWriter) Symlink(name, target string) error {
	if err := c.header(name, cpioSymlink|0o777, int64(len(target)), 1); err != nil {
		return err
	}
	if _, err := c.w.WriteString(target); err != nil {
		return err
	}
	return c.pad(len(target))
}

// File adds a regular file of size bytes read from r.
func (c *cpioWriter) File(name string, perm uint32, size int64, r io.Reader) error {
	if err := c.header(name, cpioFile|perm&0o7777, size, 1); err != nil {
		return err
	}
	n, err := io.CopyN(c.w, r, size)
	if err != nil {
		return fmt.Errorf("cpio: %s: %w after %d of %d bytes", name, err, n, size)
	}
	return c.pad(int(size % 4))
}

// Close writes the trailer and flushes. It does not close the underlying
// writer.
func (c *cpioWriter) Close() error {
	if c.closed {
		return nil
	}
	if err := c.header(cpioTrailer, 0, 0, 1); err != nil {
		return err
	}
	c.closed = true
	return c.w.Flush()
}

// header writes one entry's header and name.
func (c *cpioWriter) header(name string, mode uint32, size int64, nlink uint32) error {
	if c.closed {
		return errors.New("cpio: write after close")
	}
	if name != cpioTrailer && (name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name || strings.ContainsRune(name, 0)) {
		return fmt.Errorf("cpio: bad entry name %q", name)
	}
	if size < 0 || size > maxCPIOSize {
		return fmt.Errorf("cpio: %s: size %d out of range", name, size)
	}
	ino := c.ino
	c.ino++
	if name == cpioTrailer {
		ino = 0
	}
	// magic, then ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	if _, err := fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0); err != nil {
		return err
	}
	if _, err := c.w.WriteString(name); err != nil {
		return err
	}
	if err := c.w.WriteByte(0); err != nil {
		return err
	}
	return c.pad(cpioHeaderSize + len(name) + 1)
}

// pad writes NULs up to the next multiple of four after n bytes.
func (c *cpioWriter) pad(n int) error {
	var zeros [3]byte
	_, err := c.w.Write(zeros[:(4-n%4)%4])
	return err
}
