package hv

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/idmap"
)

// LauncherProcAttr returns how a backend starts the host process that
// runs a sandbox (QEMU, gVisor's launcher): in new user, pid, network,
// IPC and UTS namespaces (and a mount namespace with mountNS), mapped by
// m and running as root there, killed when its parent thread goes, and
// in a process group of its own (out of reach of the terminal's ^C, as
// the namespace agent). The first process of a pid namespace also cannot
// be killed by a signal it has no handler for. With kvm, where /dev/kvm
// is open to its group but not to everyone and m maps many ids, the
// process also gets that group, mapped one past m's group ids.
func LauncherProcAttr(m idmap.Map, mountNS, kvm bool) *syscall.SysProcAttr {
	flags := syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
	if mountNS {
		flags |= syscall.CLONE_NEWNS
	}
	attr := &syscall.SysProcAttr{
		Cloneflags:                 uintptr(flags),
		UidMappings:                idmap.SysProcIDMaps(m.UIDs),
		GidMappings:                idmap.SysProcIDMaps(m.GIDs),
		GidMappingsEnableSetgroups: !m.Single(),
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: m.Single()},
		Pdeathsig:                  syscall.SIGKILL,
		Setpgid:                    true,
	}
	if !kvm || m.Single() {
		return attr
	}
	// As root, the process runs as an unprivileged host id: give it the
	// group of /dev/kvm when the device is not open to everyone.
	var st unix.Stat_t
	if unix.Stat("/dev/kvm", &st) == nil && st.Mode&0o006 != 0o006 && st.Mode&0o060 == 0o060 {
		extra := uint32(0)
		for _, r := range m.GIDs {
			extra = max(extra, r.ContainerID+r.Size)
		}
		attr.GidMappings = append(attr.GidMappings, syscall.SysProcIDMap{ContainerID: int(extra), HostID: int(st.Gid), Size: 1})
		attr.Credential.Groups = []uint32{extra}
	}
	return attr
}
