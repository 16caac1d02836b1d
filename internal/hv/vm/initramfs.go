package vm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// initramfsVersion changes whenever the initramfs changes shape.
const initramfsVersion = "1"

// initramfsEntry is one file of the initramfs.
type initramfsEntry struct {
	Name string // path inside, relative
	Perm uint32
	Path string // host file with the content, or "" for Data
	Data []byte
}

// initramfsPlan is what the initramfs of a kernel and host binary holds.
type initramfsPlan struct {
	Entries []initramfsEntry
	Dynamic bool // /init needs LD_LIBRARY_PATH=/lib/cc-init
}

// planInitramfs lists the initramfs of the host binary exe for kernel k:
// /init, the modules with "modules/order", and the ELF runtime of a
// dynamic binary.
func planInitramfs(exe string, k *kernel) (*initramfsPlan, error) {
	rt, err := initRuntime(exe)
	if err != nil {
		return nil, err
	}
	mods, err := k.modules()
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Path, err)
	}
	p := &initramfsPlan{Dynamic: len(rt) > 0}
	p.Entries = append(p.Entries, initramfsEntry{Name: "init", Perm: 0o755, Path: exe})
	var order strings.Builder
	for _, m := range mods {
		p.Entries = append(p.Entries, initramfsEntry{Name: "modules/" + m.Name + ".ko", Perm: 0o644, Path: m.Path})
		order.WriteString(m.Name + "\n")
	}
	p.Entries = append(p.Entries, initramfsEntry{Name: "modules/order", Perm: 0o644, Data: []byte(order.String())})
	// A program that links runsc in (package gvisor; cc-helper does)
	// reads this file in a package init, before the agent's main can
	// mount /proc, and panics without it. The proc mount hides it.
	p.Entries = append(p.Entries, initramfsEntry{Name: "proc/sys/vm/mmap_min_addr", Perm: 0o444, Data: []byte("65536\n")})
	for _, f := range rt {
		p.Entries = append(p.Entries, initramfsEntry{Name: f.Name, Perm: 0o755, Path: f.Path})
	}
	return p, nil
}

// fileHashes remembers content hashes by path, size and modification time
// for the life of the process: the host binary alone is tens of megabytes.
var fileHashes sync.Map // hashKey → string

type hashKey struct {
	path  string
	size  int64
	mtime int64
}

// hashFile returns the SHA-256 of a file's content.
func hashFile(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	key := hashKey{p, fi.Size(), fi.ModTime().UnixNano()}
	if h, ok := fileHashes.Load(key); ok {
		return h.(string), nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	fileHashes.Store(key, sum)
	return sum, nil
}

// key is the content address of the plan's archive: the hash of every
// entry's name, mode and content.
func (p *initramfsPlan) key() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "cc initramfs v%s\n", initramfsVersion)
	for _, e := range p.Entries {
		sum := ""
		if e.Path != "" {
			var err error
			if sum, err = hashFile(e.Path); err != nil {
				return "", err
			}
		} else {
			s := sha256.Sum256(e.Data)
			sum = hex.EncodeToString(s[:])
		}
		fmt.Fprintf(h, "%s %o %s\n", e.Name, e.Perm, sum)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// buildInitramfs returns the initramfs for the plan in dir, writing it
// there first when no archive of the same content exists (atomically:
// a temporary file renamed into place, so concurrent builders agree).
func buildInitramfs(dir string, p *initramfsPlan) (string, error) {
	key, err := p.key()
	if err != nil {
		return "", fmt.Errorf("hashing the initramfs content: %w", err)
	}
	out := filepath.Join(dir, key+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// QEMU reads it as the sandbox's root: 0644.
	err = fsutil.WriteAtomic(out, 0o644, func(tmp *os.File) error {
		if err := p.write(tmp); err != nil {
			return fmt.Errorf("writing the initramfs: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return out, nil
}

// write writes the plan as a cpio archive: the directories the agent and
// the entries need, then the entries.
func (p *initramfsPlan) write(w io.Writer) error {
	c := newCPIOWriter(w)
	dirs := map[string]bool{"dev": true, "proc": true, "sys": true, "run": true}
	for _, e := range p.Entries {
		for d := path.Dir(e.Name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	// Sorted, a parent comes before its children.
	for _, d := range slices.Sorted(func(yield func(string) bool) {
		for d := range dirs {
			if !yield(d) {
				return
			}
		}
	}) {
		if err := c.Dir(d, 0o755); err != nil {
			return err
		}
	}
	for _, e := range p.Entries {
		if e.Path == "" {
			if err := c.File(e.Name, e.Perm, int64(len(e.Data)), strings.NewReader(string(e.Data))); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(e.Path)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil {
			err = c.File(e.Name, e.Perm, fi.Size(), f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return c.Close()
}
