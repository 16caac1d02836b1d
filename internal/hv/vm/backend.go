package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/ccsandbox/sandbox/internal/hv"
)

// Backend starts virtual-machine sandboxes. The zero value is ready to
// use: it finds QEMU (CC_QEMU, else PATH), the guest kernel (see
// findKernel) and the accelerator by itself.
type Backend struct{}

// Name returns "vm".
func (Backend) Name() string { return "vm" }

// Capabilities: the guest has its own kernel; connections are yamux
// streams, which carry no descriptors, and the writable layer is inside
// the guest.
func (Backend) Capabilities() hv.Capabilities {
	return hv.Capabilities{OwnKernel: true}
}

// Start boots a virtual machine for cfg and returns once its agent serves.
// It returns an error wrapping ipc.ErrHypervisorUnavailable, naming what
// is missing and how to install it, when QEMU, a guest kernel or
// mkfs.ext4 cannot be found.
func (b Backend) Start(ctx context.Context, cfg *hv.Config) (hv.Sandbox, error) {
	return start(ctx, cfg)
}

// cacheDir returns where the backend keeps its initramfs archives and
// looks for kernels: the config's, else CC_CACHE_DIR, else
// os.UserCacheDir()/cc (the SDK's default cache directory).
func cacheDir(cfg *hv.Config) (string, error) {
	if cfg.CacheDir != "" {
		return cfg.CacheDir, nil
	}
	if d := os.Getenv("CC_CACHE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", errors.New("vm backend: no cache directory: set CC_CACHE_DIR")
	}
	return filepath.Join(d, "cc"), nil
}
