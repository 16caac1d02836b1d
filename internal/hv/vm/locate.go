package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// qemuBinaries names the QEMU system emulator for each host architecture
// the backend runs guests on (the guest has the host's architecture, as
// its /init is the host binary).
var qemuBinaries = map[string]string{"amd64": "qemu-system-x86_64"}

// installHint says how to get QEMU on this system.
func installHint() string {
	switch runtime.GOOS {
	case "darwin":
		return "brew install qemu"
	case "windows":
		return "install QEMU from qemu.org and put it in PATH"
	}
	return "apt-get install qemu-system-x86 (Debian, Ubuntu), dnf install qemu-system-x86-core (Fedora), or set CC_QEMU"
}

// findQEMU returns the QEMU binary: CC_QEMU when set, else the emulator
// for this architecture found in PATH.
func findQEMU() (string, error) {
	if p := os.Getenv("CC_QEMU"); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: CC_QEMU=%s is not an executable file (%v); %s", ipc.ErrHypervisorUnavailable, p, errOr(err, "not executable"), installHint())
		}
		return p, nil
	}
	name, ok := qemuBinaries[runtime.GOARCH]
	if !ok {
		return "", fmt.Errorf("%w: the VM backend runs guests on amd64 hosts only, not %s", ipc.ErrHypervisorUnavailable, runtime.GOARCH)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: QEMU (%s) is not installed: %s", ipc.ErrHypervisorUnavailable, name, installHint())
	}
	return p, nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// accelerator returns the fastest accelerator for guests of qemu: the
// CC_VM_ACCEL environment variable when set (kvm, hvf, whpx or tcg); hvf on
// macOS, whpx on Windows; on Linux kvm when QEMU's identity can open
// /dev/kvm (see hv.KVMOpen) and a paused QEMU starts with it, else tcg.
func accelerator(qemu string, kvmOpen bool) (string, error) {
	if a := os.Getenv("CC_VM_ACCEL"); a != "" {
		switch a {
		case "kvm", "hvf", "whpx", "tcg":
			return a, nil
		}
		return "", fmt.Errorf("CC_VM_ACCEL=%s: want kvm, hvf, whpx or tcg", a)
	}
	switch runtime.GOOS {
	case "darwin":
		return "hvf", nil
	case "windows":
		return "whpx", nil
	case "linux":
		if kvmOpen && kvmWorks(qemu) {
			return "kvm", nil
		}
	}
	return "tcg", nil
}

// kvmProbes caches, per QEMU binary, whether KVM starts a machine.
var kvmProbes sync.Map // path → bool

// kvmWorks reports whether qemu starts a paused machine with KVM: some
// hosts (nested virtualisation) have a /dev/kvm that answers but cannot
// run a guest's CPU, and QEMU aborts setting it up.
func kvmWorks(qemu string) bool {
	if v, ok := kvmProbes.Load(qemu); ok {
		return v.(bool)
	}
	cmd := exec.Command(qemu, "-accel", "kvm", "-cpu", "host", "-machine", "microvm", "-nodefaults",
		"-no-user-config", "-display", "none", "-S", "-qmp", "stdio")
	cmd.Stdin = strings.NewReader(`{"execute":"qmp_capabilities"}` + "\n" + `{"execute":"quit"}` + "\n")
	ok := cmd.Run() == nil
	kvmProbes.Store(qemu, ok)
	return ok
}

// machines caches, per QEMU binary, the machine types it offers.
var machines sync.Map // path → map[string]bool

// hasMachine reports whether the QEMU at qemu offers machine type name.
func hasMachine(qemu, name string) (bool, error) {
	if m, ok := machines.Load(qemu); ok {
		return m.(map[string]bool)[name], nil
	}
	out, err := exec.Command(qemu, "-machine", "help").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return false, fmt.Errorf("%w: %s does not run: %v", ipc.ErrHypervisorUnavailable, qemu, err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[0]] = true
		}
	}
	machines.Store(qemu, m)
	return m[name], nil
}
