package gvisor

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// runsc is the runsc a sandbox starts with.
type runsc struct {
	path string // the binary
	self bool   // the program itself, in runsc's role
}

// errNoRunsc is what Start wraps when no runsc is at hand.
var errNoRunsc = errors.New("the gvisor backend needs runsc: import _ \"github.com/ccsandbox/sandbox/gvisor\" in this program (it links runsc in), " +
	"or put a runsc on $PATH or name it with CC_RUNSC (CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest builds one)")

// findRunsc returns the runsc to use: CC_RUNSC, else runsc on $PATH, else
// this program when it links runsc in (self). A runsc linked dynamically
// cannot work (see the package documentation), and is refused with an
// error saying how to build a static one.
func findRunsc(self bool) (runsc, error) {
	var r runsc
	switch p := os.Getenv("CC_RUNSC"); {
	case p != "":
		abs, err := filepath.Abs(p)
		if err != nil {
			return r, err
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return r, fmt.Errorf("%w: CC_RUNSC=%s is not an executable file", ipc.ErrHypervisorUnavailable, p)
		}
		r.path = abs
	default:
		if p, err := exec.LookPath("runsc"); err == nil {
			if r.path, err = filepath.Abs(p); err != nil {
				return r, err
			}
		} else if self {
			r.path, r.self = "/proc/self/exe", true
		} else {
			return r, fmt.Errorf("%w: %w", ipc.ErrHypervisorUnavailable, errNoRunsc)
		}
	}
	interp, err := interpreter(r.path)
	if err != nil {
		return r, fmt.Errorf("%w: runsc %s: %v", ipc.ErrHypervisorUnavailable, r.path, err)
	}
	if interp == "" {
		return r, nil
	}
	if r.self {
		exe, _ := os.Executable()
		return r, fmt.Errorf("%w: this program (%s) links runsc in but is linked dynamically (ELF interpreter %s): "+
			"runsc re-executes itself after moving into an empty root, where the interpreter is missing; "+
			"build the program with CGO_ENABLED=0, or name a static runsc with CC_RUNSC", ipc.ErrHypervisorUnavailable, exe, interp)
	}
	return r, fmt.Errorf("%w: runsc %s is linked dynamically (ELF interpreter %s): it re-executes itself after moving into an empty root, "+
		"where the interpreter is missing, and fails with \"error executing umounter: fork/exec /proc/self/exe: no such file or directory\"; "+
		"build it with CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@VERSION", ipc.ErrHypervisorUnavailable, r.path, interp)
}

// interps caches interpreter's answers by file identity.
var interps sync.Map // fileKey → string

type fileKey struct {
	path  string
	size  int64
	mtime int64
}

// interpreter returns the ELF interpreter the binary at path needs, or ""
// when it is linked statically.
func interpreter(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	key := fileKey{path, fi.Size(), fi.ModTime().UnixNano()}
	if v, ok := interps.Load(key); ok {
		return v.(string), nil
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	interp := ""
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", err
		}
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		interp = string(b)
	}
	interps.Store(key, interp)
	return interp, nil
}
