package sandbox

import (
	"errors"
	"os"
	"path/filepath"
)

// WithKernel sets the guest kernel of the VM backend (BackendVM): a
// vmlinuz file whose modules are in ../lib/modules/<version> beside its
// directory or in /lib/modules/<version>, or a directory a Debian kernel
// package was unpacked into (dpkg -x). Without it the backend uses the
// CC_KERNEL environment variable, else looks in the cache directory,
// /var/cache/cc-sandbox/vm/kernel (filled by scripts/ensure-vm-deps.sh) and
// /boot. The kernel needs the virtio, 9p, ext4 and overlay modules, as
// Debian's linux-image-amd64 has them. A path that does not exist is an
// error; with another backend the option is an error from New.
func WithKernel(path string) Option {
	return instanceOption(func(o *newOptions) error {
		if path == "" {
			return errors.New("WithKernel: empty path")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return errors.New("WithKernel: " + err.Error())
		}
		o.kernel = abs
		return nil
	})
}
