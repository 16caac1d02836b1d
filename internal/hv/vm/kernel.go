package vm

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// kernel is a guest kernel and the modules built for it.
type kernel struct {
	Path    string // the bzImage (vmlinuz)
	Version string // its release, the name of its modules directory
	ModDir  string // .../lib/modules/<Version>
}

// SystemKernelDir is where scripts/ensure-vm-deps.sh unpacks Debian's
// kernel package when it runs as root, for every user of the host.
const SystemKernelDir = "/var/cache/cc-sandbox/vm/kernel"

// kernelHint says how to get a kernel the backend can use.
const kernelHint = "run scripts/ensure-vm-deps.sh (it unpacks Debian's linux-image-amd64 into " + SystemKernelDir +
	" or the cache directory), install linux-image-amd64, or name one with WithKernel or CC_KERNEL"

// findKernel returns the guest kernel, looking in this order:
//
//  1. explicit, from WithKernel or else CC_KERNEL: a vmlinuz file (its
//     modules in ../lib/modules/<version> beside its directory, or in
//     /lib/modules/<version>), or a directory a kernel package was
//     unpacked into (dpkg -x);
//  2. cacheDir/vm/kernel/*: packages unpacked by scripts/ensure-vm-deps.sh
//     for this user;
//  3. SystemKernelDir/*: the same, unpacked by root for everyone;
//  4. /boot/vmlinuz-* with /lib/modules.
//
// Within a place, the newest version with every needed module wins. An
// explicit kernel that lacks a module is an error naming it.
func findKernel(explicit, cacheDir string) (*kernel, error) {
	if explicit == "" {
		explicit = os.Getenv("CC_KERNEL")
	}
	if explicit != "" {
		ks, err := kernelsAt(explicit)
		if err != nil {
			return nil, fmt.Errorf("%w: kernel %s: %v", ipc.ErrHypervisorUnavailable, explicit, err)
		}
		var errs []error
		for _, k := range ks {
			if err := k.check(); err != nil {
				errs = append(errs, err)
				continue
			}
			return k, nil
		}
		return nil, fmt.Errorf("%w: kernel %s: %v", ipc.ErrHypervisorUnavailable, explicit, errors.Join(errs...))
	}
	var places []string
	if cacheDir != "" {
		places = append(places, filepath.Join(cacheDir, "vm", "kernel"))
	}
	places = append(places, SystemKernelDir, "/boot")
	var rejected []string
	for _, place := range places {
		var ks []*kernel
		if place == "/boot" {
			ks, _ = kernelsAt(place)
		} else {
			entries, _ := os.ReadDir(place)
			for _, e := range entries {
				more, _ := kernelsAt(filepath.Join(place, e.Name()))
				ks = append(ks, more...)
			}
		}
		for _, k := range ks {
			if err := k.check(); err != nil {
				rejected = append(rejected, err.Error())
				continue
			}
			return k, nil
		}
	}
	msg := "no guest kernel found in " + strings.Join(places, ", ")
	if len(rejected) > 0 {
		msg += " (unusable: " + strings.Join(rejected, "; ") + ")"
	}
	return nil, fmt.Errorf("%w: %s: %s", ipc.ErrHypervisorUnavailable, msg, kernelHint)
}

// kernelsAt returns the kernels at p, a vmlinuz file or a directory holding
// boot/vmlinuz-* (an unpacked package) or vmlinuz-* (/boot), newest first.
func kernelsAt(p string) ([]*kernel, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []*kernel{kernelFile(p)}, nil
	}
	var files []string
	for _, pattern := range []string{"boot/vmlinuz-*", "vmlinuz-*"} {
		m, _ := filepath.Glob(filepath.Join(p, pattern))
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, errors.New("no vmlinuz-* in it or in its boot directory")
	}
	slices.SortFunc(files, func(a, b string) int { return compareVersions(filepath.Base(b), filepath.Base(a)) })
	var ks []*kernel
	for _, f := range files {
		ks = append(ks, kernelFile(f))
	}
	return ks, nil
}

// kernelFile describes the kernel at path, finding its modules beside it
// (an unpacked package or a root file system) or in /lib/modules.
func kernelFile(path string) *kernel {
	k := &kernel{Path: path, Version: strings.TrimPrefix(filepath.Base(path), "vmlinuz-")}
	root := filepath.Dir(filepath.Dir(path)) // .../boot/vmlinuz-X → ...
	for _, dir := range []string{
		filepath.Join(root, "lib", "modules", k.Version),
		filepath.Join(root, "usr", "lib", "modules", k.Version),
		filepath.Join("/lib/modules", k.Version),
		filepath.Join("/usr/lib/modules", k.Version),
	} {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			k.ModDir = dir
			break
		}
	}
	return k
}

// check reports whether the kernel can run the guest: readable, with a
// modules directory holding every module the guest needs.
func (k *kernel) check() error {
	f, err := os.Open(k.Path)
	if err != nil {
		return err
	}
	f.Close()
	if k.ModDir == "" {
		return fmt.Errorf("%s: no modules directory for version %s (looked in ../lib/modules beside it and /lib/modules)", k.Path, k.Version)
	}
	if _, err := k.modules(); err != nil {
		return fmt.Errorf("%s: %w", k.Path, err)
	}
	return nil
}

// guestModules are the modules the guest loads, by name; dependencies come
// first in the initramfs's order whatever their place here. Modules built
// into the kernel are skipped.
var guestModules = []string{
	"virtio_mmio", "virtio_pci", // the transports of microvm and q35
	"virtio_console",                       // the agent's port
	"virtio_blk", "crc32c_generic", "ext4", // the writable layer's disk (ext4 checksums need crc32c)
	"9pnet_virtio", "9p", // the layers and mounts
	"overlay",
	"virtio_net", // egress, when asked for
}

// moduleHints explain missing modules.
var moduleHints = map[string]string{
	"9p": "Debian's cloud kernel (linux-image-cloud-amd64) has no 9p: use linux-image-amd64",
}

// moduleFile is one module to load.
type moduleFile struct {
	Name string
	Path string
}

// moduleCache remembers the resolved module lists by modules directory.
var moduleCache sync.Map // ModDir → []moduleFile

// modules returns the guest's modules (guestModules) to load in order,
// dependencies first.
func (k *kernel) modules() ([]moduleFile, error) {
	if v, ok := moduleCache.Load(k.ModDir); ok {
		return v.([]moduleFile), nil
	}
	order, err := k.modulesFor(guestModules)
	if err != nil {
		return nil, err
	}
	moduleCache.Store(k.ModDir, order)
	return order, nil
}

// modulesFor returns the named modules and what they depend on, in the
// order to load them, leaving out those built into the kernel.
func (k *kernel) modulesFor(names []string) ([]moduleFile, error) {
	paths := map[string]string{} // name → file
	err := filepath.WalkDir(filepath.Join(k.ModDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			paths[moduleName(strings.TrimSuffix(d.Name(), ".ko"))] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the modules: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no uncompressed modules (*.ko) in %s", k.ModDir)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(k.ModDir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			builtin[moduleName(strings.TrimSuffix(filepath.Base(line), ".ko"))] = true
		}
	}
	var order []moduleFile
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		p, ok := paths[name]
		if !ok {
			if builtin[name] {
				state[name] = 2
				return nil
			}
			msg := fmt.Sprintf("the kernel has no module %s", name)
			if from != "" {
				msg += " (needed by " + from + ")"
			}
			if h := moduleHints[name]; h != "" {
				msg += ": " + h
			}
			return errors.New(msg)
		}
		state[name] = 1
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, moduleFile{Name: name, Path: p})
		return nil
	}
	for _, m := range names {
		if err := visit(m, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleName normalises a module's name as the kernel does.
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// moduleDepends reads the "depends=" entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var deps []string
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, moduleName(d))
				}
			}
			return deps, nil
		}
	}
	return nil, nil
}

// compareVersions orders kernel file names by the numbers in them.
func compareVersions(a, b string) int {
	na, nb := numbers(a), numbers(b)
	if c := slices.Compare(na, nb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func numbers(s string) []int {
	var out []int
	n, in := 0, false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			n, in = n*10+int(r-'0'), true
			continue
		}
		if in {
			out = append(out, n)
			n, in = 0, false
		}
	}
	if in {
		out = append(out, n)
	}
	return out
}
