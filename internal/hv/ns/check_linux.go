package ns

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// checkHost reports, once per process, whether this host can run namespace
// sandboxes: an error wrapping ipc.ErrHypervisorUnavailable names the
// missing kernel feature.
var checkHost = sync.OnceValue(func() error {
	return checkFeatures(os.ReadFile, os.Geteuid())
})

// checkFeatures is checkHost over a way to read /proc files, so tests can
// show it a host that lacks each feature.
func checkFeatures(read func(string) ([]byte, error), euid int) error {
	if _, err := read("/proc/self/ns/user"); err != nil && !isDirErr(err) {
		return fmt.Errorf("%w: the kernel has no user namespaces (CONFIG_USER_NS)", ipc.ErrHypervisorUnavailable)
	}
	if b, err := read("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return fmt.Errorf("%w: user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0)", ipc.ErrHypervisorUnavailable)
	}
	if euid != 0 {
		if b, err := read("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
			return fmt.Errorf("%w: unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)", ipc.ErrHypervisorUnavailable)
		}
	}
	fsys, err := read("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("%w: cannot read /proc/filesystems: %v", ipc.ErrHypervisorUnavailable, err)
	}
	if !bytes.Contains(fsys, []byte("\toverlay\n")) {
		return fmt.Errorf("%w: the kernel has no overlayfs (load the overlay module: modprobe overlay)", ipc.ErrHypervisorUnavailable)
	}
	return nil
}

// isDirErr reports whether reading failed only because the path is not a
// regular file: /proc/self/ns/user exists but cannot be read as one.
func isDirErr(err error) bool {
	return strings.Contains(err.Error(), "invalid argument") || strings.Contains(err.Error(), "is a directory")
}
