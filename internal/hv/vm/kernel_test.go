package vm

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// TestFindKernelHere: this machine has a guest kernel (make test runs
// scripts/ensure-vm-deps.sh), and its module list loads dependencies first.
func TestFindKernelHere(t *testing.T) {
	k, err := findKernel("", t.TempDir())
	if err != nil {
		t.Fatalf("no guest kernel on a machine that should have one: %v", err)
	}
	mods, err := k.modules()
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		pos[m.Name] = i + 1
	}
	for _, need := range []string{"virtio_console", "virtio_blk", "ext4", "9p", "9pnet_virtio", "overlay"} {
		if pos[need] == 0 {
			t.Errorf("module %s not loaded (%v)", need, mods)
		}
	}
	for _, dep := range [][2]string{{"virtio_ring", "virtio_console"}, {"9pnet", "9p"}, {"jbd2", "ext4"}, {"netfs", "9p"}} {
		if pos[dep[0]] != 0 && pos[dep[0]] > pos[dep[1]] {
			t.Errorf("%s loads after %s, which needs it", dep[0], dep[1])
		}
	}
	// The same kernel named explicitly, as a file and as its package root.
	if k2, err := findKernel(k.Path, ""); err != nil || k2.Path != k.Path {
		t.Errorf("explicit %s: %v %v", k.Path, k2, err)
	}
}

// TestFindKernelMissing9p: a kernel without 9p (Debian's cloud kernel) is
// refused with the reason and the remedy.
func TestFindKernelMissing9p(t *testing.T) {
	real, err := findKernel("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mods, _ := real.modules()
	root := t.TempDir()
	kpath := filepath.Join(root, "boot", "vmlinuz-"+real.Version)
	os.MkdirAll(filepath.Dir(kpath), 0o755)
	if err := os.Symlink(real.Path, kpath); err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if m.Name == "9p" {
			continue
		}
		rel, _ := filepath.Rel(real.ModDir, m.Path)
		dst := filepath.Join(root, "lib", "modules", real.Version, rel)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.Symlink(m.Path, dst); err != nil {
			t.Fatal(err)
		}
	}
	_, err = findKernel(root, "")
	if !errors.Is(err, ipc.ErrHypervisorUnavailable) || !strings.Contains(err.Error(), "no module 9p") || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Errorf("a kernel without 9p: %v", err)
	}
}

func TestFindKernelErrors(t *testing.T) {
	for _, p := range []string{"/nonexistent/vmlinuz", t.TempDir()} {
		_, err := findKernel(p, "")
		if !errors.Is(err, ipc.ErrHypervisorUnavailable) || !strings.Contains(err.Error(), p) {
			t.Errorf("kernel %s: %v", p, err)
		}
	}
	t.Setenv("CC_KERNEL", "/nonexistent/from-env")
	if _, err := findKernel("", ""); err == nil || !strings.Contains(err.Error(), "from-env") {
		t.Errorf("CC_KERNEL: %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	names := []string{"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-57-amd64", "vmlinuz-5.10.0-30-amd64", "vmlinuz-6.12.1-amd64"}
	slices.SortFunc(names, compareVersions)
	want := []string{"vmlinuz-5.10.0-30-amd64", "vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-57-amd64", "vmlinuz-6.12.1-amd64"}
	if !slices.Equal(names, want) {
		t.Errorf("%v", names)
	}
}

// TestBootImage: the bzImage's vmlinux is unpacked once into the cache, an
// ELF QEMU boots through PVH; a kernel that cannot be unpacked boots as is.
func TestBootImage(t *testing.T) {
	k, err := findKernel("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	img := bootImage(k, cache)
	if img == k.Path || !strings.HasPrefix(img, cache) {
		t.Fatalf("boot image %s, want an unpacked vmlinux in %s", img, cache)
	}
	f, err := elf.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !hasPVHNote(f) {
		t.Error("the unpacked vmlinux has no PVH note")
	}
	if again := bootImage(k, cache); again != img {
		t.Errorf("second call: %s", again)
	}
	junk := &kernel{Path: filepath.Join(t.TempDir(), "vmlinuz-junk")}
	os.WriteFile(junk.Path, []byte("not a kernel"), 0o644)
	if got := bootImage(junk, cache); got != junk.Path {
		t.Errorf("a junk kernel: %s, want it booted as is", got)
	}
}
