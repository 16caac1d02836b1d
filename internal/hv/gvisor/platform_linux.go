package gvisor

import (
	"bytes"
	"fmt"
	"os"
	"sync"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"golang.org/x/sys/unix"
)

// Platforms runsc runs the sandbox's code on.
const (
	platformSystrap = "systrap" // seccomp traps: works everywhere
	platformKVM     = "kvm"     // hardware virtualisation through /dev/kvm
	platformPtrace  = "ptrace"  // the oldest, slowest one
)

// platform returns the platform for a sandbox whose ids are m:
// CC_GVISOR_PLATFORM when set, else KVM when the host has a usable
// /dev/kvm, else systrap.
func platform(m idmap.Map) (string, error) {
	switch p := os.Getenv("CC_GVISOR_PLATFORM"); p {
	case platformSystrap, platformKVM, platformPtrace:
		return p, nil
	case "":
	default:
		return "", fmt.Errorf("CC_GVISOR_PLATFORM=%s: want systrap, kvm or ptrace", p)
	}
	if hv.KVMOpen(m) && kvmUsable() {
		return platformKVM, nil
	}
	return platformSystrap, nil
}

var kvmProbe struct {
	once sync.Once
	ok   bool
}

// kvmUsable reports whether /dev/kvm can run gVisor's KVM platform: the
// host's CPUs show hardware virtualisation (a paravirtual KVM such as
// kvm_pvm, which answers on /dev/kvm without it, runs no gVisor), the API
// version is the stable one, and a virtual machine can be created.
func kvmUsable() bool {
	kvmProbe.once.Do(func() {
		cpuinfo, err := os.ReadFile("/proc/cpuinfo")
		if err != nil || !bytes.Contains(cpuinfo, []byte(" vmx")) && !bytes.Contains(cpuinfo, []byte(" svm")) {
			return
		}
		fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		const kvmGetAPIVersion, kvmCreateVM = 0xae00, 0xae01
		if v, _ := unix.IoctlRetInt(fd, kvmGetAPIVersion); v != 12 {
			return
		}
		vm, err := unix.IoctlRetInt(fd, kvmCreateVM)
		if err != nil {
			return
		}
		unix.Close(vm)
		kvmProbe.ok = true
	})
	return kvmProbe.ok
}
