package vm

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// guestMachines are the ELF machines the guest runs, per host architecture.
var guestMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64}

// libDirs are where the ELF interpreter looks for libraries on Debian and
// most other distributions.
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// initLibDir is where a dynamically linked /init finds its libraries in
// the initramfs (through LD_LIBRARY_PATH on the kernel command line).
const initLibDir = "lib/cc-init"

// runtimeFile is a host file the initramfs carries for /init.
type runtimeFile struct {
	Name string // in the initramfs
	Path string // on the host
}

// initRuntime checks that the host binary exe can be the guest's /init and
// returns what it needs besides itself: nothing for a static binary
// (CGO_ENABLED=0), its ELF interpreter and the libraries it needs,
// recursively, for a dynamic one (cgo, or the race detector).
func initRuntime(exe string) ([]runtimeFile, error) {
	f, err := elf.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("the host binary %s cannot be the VM's /init: %w", exe, err)
	}
	defer f.Close()
	if want, ok := guestMachines[runtime.GOARCH]; !ok || f.Machine != want || f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("the host binary %s (%v) cannot be the VM's /init: the guest runs %s", exe, f.Machine, runtime.GOARCH)
	}
	interp := interpreter(f)
	if interp == "" {
		return nil, nil // static
	}
	files := []runtimeFile{{Name: interp[1:], Path: interp}}
	seen := map[string]bool{}
	var walk func(*elf.File, string) error
	walk = func(f *elf.File, who string) error {
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("reading the libraries %s needs: %w", who, err)
		}
		for _, lib := range needed {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			p := findLib(lib)
			if p == "" {
				return fmt.Errorf("%s needs %s, found in none of %v", who, lib, libDirs)
			}
			if filepath.Base(p) != filepath.Base(interp) {
				files = append(files, runtimeFile{Name: initLibDir + "/" + lib, Path: p})
			}
			lf, err := elf.Open(p)
			if err != nil {
				return fmt.Errorf("library %s: %w", p, err)
			}
			err = walk(lf, p)
			lf.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(f, exe); err != nil {
		return nil, fmt.Errorf("the dynamically linked host binary cannot be the VM's /init: %w (build it with CGO_ENABLED=0 for a static binary)", err)
	}
	return files, nil
}

// interpreter returns the PT_INTERP of f, or "" for a static binary.
func interpreter(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return ""
		}
		for i, c := range b {
			if c == 0 {
				b = b[:i]
				break
			}
		}
		return string(b)
	}
	return ""
}

// findLib returns the host path of a library by its soname, or "".
func findLib(name string) string {
	for _, d := range libDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}
