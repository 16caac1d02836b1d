package engine

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/hv/gvisor"
	"github.com/ccsandbox/sandbox/internal/hv/ns"
	"github.com/ccsandbox/sandbox/internal/hv/vm"
)

// Backend names, as WithBackend and CC_BACKEND take them.
const (
	BackendNamespaces = "ns"
	BackendVM         = "vm"
	BackendGVisor     = "gvisor"
)

var backends = struct {
	sync.Mutex
	m map[string]hv.Backend
}{m: map[string]hv.Backend{BackendNamespaces: ns.Backend{}, BackendVM: vm.Backend{}, BackendGVisor: gvisor.Backend{}}}

// RegisterBackend makes b the backend of that name, replacing any other:
// the opt-in package gvisor (github.com/ccsandbox/sandbox/gvisor) calls it
// from its init to put the gVisor backend that runs the program itself as
// runsc in place of the one that looks for a runsc binary.
func RegisterBackend(name string, b hv.Backend) {
	backends.Lock()
	defer backends.Unlock()
	backends.m[name] = b
}

// LookupBackend returns the backend of that name, "" meaning the default
// (namespaces).
func LookupBackend(name string) (hv.Backend, error) {
	if name == "" {
		name = BackendNamespaces
	}
	backends.Lock()
	defer backends.Unlock()
	if b, ok := backends.m[name]; ok {
		return b, nil
	}
	var names []string
	for n := range backends.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("unknown backend %q (known: %s)", name, strings.Join(names, ", "))
}
