package vm

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// defaultUpperDiskMB is the size of the sparse disk image that holds a
// guest's writable layer when WithDiskMB does not set it: the most a
// sandbox can write. Only what is written takes space on the host.
const defaultUpperDiskMB = 8 << 10

// upperDiskMB is the size in MiB of the writable disk of a sandbox
// started with WithDiskMB(mb), 0 when not set.
func upperDiskMB(mb uint64) uint64 {
	if mb == 0 {
		return defaultUpperDiskMB
	}
	return mb
}

// findMkfs returns mkfs.ext4, which may be outside an unprivileged user's
// PATH.
func findMkfs() (string, error) {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: mkfs.ext4 is not installed (the VM's writable layer is an ext4 disk): apt-get install e2fsprogs", ipc.ErrHypervisorUnavailable)
}

// makeUpperDisk creates an empty ext4 file system of sizeMB MiB (the
// default when 0) in a sparse file at p.
// ext4 rather than the guest's tmpfs: Linux 6.1's tmpfs cannot hold the
// user.* extended attributes overlayfs needs (with userxattr) for opaque
// directories, and a disk keeps the writable layer out of guest memory.
func makeUpperDisk(p string, sizeMB uint64) error {
	mkfs, err := findMkfs()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(int64(upperDiskMB(sizeMB)) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out, err := exec.Command(mkfs, "-q", "-F", "-m", "0", "-O", "^has_journal",
		"-E", "lazy_itable_init=1,nodiscard,root_owner=0:0", p).CombinedOutput()
	if err != nil {
		return fmt.Errorf("making the writable disk: %s: %v: %s", mkfs, err, strings.TrimSpace(string(out)))
	}
	return nil
}
