package hv

import (
	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/idmap"
)

// KVMOpen reports whether a backend's process (QEMU, runsc), run with the
// id mapping m, can open /dev/kvm: as the host user itself (unprivileged:
// a single mapping), or as root's sandbox ids through the device's group
// or its permissions for everyone. It says nothing of whether KVM works
// (a backend asks that of its own process).
func KVMOpen(m idmap.Map) bool {
	var st unix.Stat_t
	if unix.Stat("/dev/kvm", &st) != nil {
		return false
	}
	if m.Single() {
		return unix.Access("/dev/kvm", unix.R_OK|unix.W_OK) == nil
	}
	return st.Mode&0o006 == 0o006 || st.Mode&0o060 == 0o060
}
