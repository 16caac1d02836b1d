package vm

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// virtiofsd is QEMU's virtio-fs daemon as Debian's qemu-system-common
// installs it.
const virtiofsd = "/usr/lib/qemu/virtiofsd"

// BenchmarkGuestShare compares the two ways QEMU shares a host directory
// with a guest, the choice behind the backend's use of virtio-9p for
// layers: virtio-9p (QEMU alone) and virtio-fs (a virtiofsd per share and
// guest memory shared with it). Each round boots a guest whose /init is a
// busybox script that mounts the share read-only with the cache mode an
// immutable layer allows, reads a 64 MiB file, lists 1000 small files with
// their attributes, and runs a binary from the share 100 times; the host
// times each step by the console line that ends it. Reported per step in
// milliseconds (boot is from QEMU's start to the mounted share).
func BenchmarkGuestShare(b *testing.B) {
	qemu, err := findQEMU()
	if err != nil {
		b.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	cache = filepath.Join(cache, "cc")
	k, err := findKernel("", cache)
	if err != nil {
		b.Fatal(err)
	}
	accel, err := accelerator(qemu, hv.KVMOpen(idmap.Current()))
	if err != nil {
		b.Fatal(err)
	}
	machine := "microvm"
	if ok, _ := hasMachine(qemu, machine); !ok {
		machine = "q35"
	}
	tree := shareTree(b)
	for _, kind := range []string{"9p", "virtiofs"} {
		b.Run(kind, func(b *testing.B) {
			if kind == "virtiofs" {
				if _, err := os.Stat(virtiofsd); err != nil {
					b.Fatalf("virtiofsd (Debian's qemu-system-common) is missing: %v", err)
				}
				if os.Geteuid() != 0 {
					b.Skip("virtiofsd needs root to share a directory")
				}
			}
			initrd := shareInitramfs(b, k, kind)
			steps := map[string]time.Duration{}
			for b.Loop() {
				for step, d := range bootShareGuest(b, shareGuest{
					qemu: qemu, accel: accel, machine: machine, kind: kind,
					kernel: bootImage(k, cache), initrd: initrd, tree: tree,
				}) {
					steps[step] += d
				}
			}
			for _, step := range []string{"boot", "read64MiB", "list1000", "exec100"} {
				b.ReportMetric(float64(steps[step].Milliseconds())/float64(b.N), step+"-ms")
			}
		})
	}
}

// shareTree makes the shared directory: a 64 MiB file of random bytes, 20
// directories of 50 files of 4 KiB, and busybox.
func shareTree(b *testing.B) string {
	dir := b.TempDir()
	big := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	for d := range 20 {
		sub := filepath.Join(dir, "tree", fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 50 {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d", f)), big[:4096], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	bin, err := os.ReadFile(testimage.BusyboxPath)
	if err != nil {
		b.Fatalf("%v: %v", testimage.ErrNoBusybox, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bin, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// shareGuestScript is the guest's /init; SHARE_MOUNT is the mount command.
const shareGuestScript = `#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
exec >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
for m in $(/bin/busybox cat /modules/order); do /bin/busybox insmod /modules/$m.ko || echo "FAIL insmod $m"; done
/bin/busybox mkdir -p /mnt
SHARE_MOUNT || echo "FAIL mount"
echo "MARK boot"
/bin/busybox cat /mnt/big >/dev/null || echo "FAIL read"
echo "MARK read64MiB"
/bin/busybox ls -lR /mnt/tree >/dev/null || echo "FAIL list"
echo "MARK list1000"
i=0
while [ $i -lt 100 ]; do /mnt/busybox true || echo "FAIL exec"; i=$((i+1)); done
echo "MARK exec100"
/bin/busybox poweroff -f
`

// shareInitramfs writes the initramfs of a share guest of kind.
func shareInitramfs(b *testing.B, k *kernel, kind string) string {
	names := []string{"virtio_mmio", "virtio_pci", "9pnet_virtio", "9p"}
	mount := "/bin/busybox mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=client,msize=262144,cache=loose share /mnt"
	if kind == "virtiofs" {
		names = []string{"virtio_mmio", "virtio_pci", "virtiofs"}
		mount = "/bin/busybox mount -t virtiofs -o ro share /mnt"
	}
	mods, err := k.modulesFor(names)
	if err != nil {
		b.Fatal(err)
	}
	plan := &initramfsPlan{Entries: []initramfsEntry{
		{Name: "init", Perm: 0o755, Data: []byte(strings.Replace(shareGuestScript, "SHARE_MOUNT", mount, 1))},
		{Name: "bin/busybox", Perm: 0o755, Path: testimage.BusyboxPath},
		{Name: "mnt/.keep", Perm: 0o644},
	}}
	var order []string
	for _, m := range mods {
		plan.Entries = append(plan.Entries, initramfsEntry{Name: "modules/" + m.Name + ".ko", Perm: 0o644, Path: m.Path})
		order = append(order, m.Name)
	}
	plan.Entries = append(plan.Entries, initramfsEntry{Name: "modules/order", Perm: 0o644, Data: []byte(strings.Join(order, "\n") + "\n")})
	p := filepath.Join(b.TempDir(), "initrd")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := plan.write(f); err != nil {
		b.Fatal(err)
	}
	return p
}

// shareGuest is one guest of BenchmarkGuestShare.
type shareGuest struct {
	qemu, accel, machine, kind string
	kernel, initrd, tree       string
}

// bootShareGuest boots g and returns how long each step took.
func bootShareGuest(b *testing.B, g shareGuest) map[string]time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const memMB = 512
	dev := "-device"
	machine := "microvm,acpi=on,rtc=on"
	if g.machine == "q35" {
		dev, machine = "-pci", "q35"
	}
	cmdline := "console=ttyS0 quiet panic=-1 rdinit=/init"
	if g.machine == "microvm" && g.accel == "tcg" {
		if khz := hostTSCkHz(); khz > 0 {
			cmdline += " tsc_early_khz=" + strconv.Itoa(khz)
		}
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-accel", g.accel, "-cpu", "max", "-m", strconv.Itoa(memMB), "-smp", "1",
		"-kernel", g.kernel, "-initrd", g.initrd, "-append", cmdline,
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
	}
	if g.kind == "9p" {
		args = append(args, "-machine", machine,
			"-fsdev", "local,id=fs0,path="+qemuEscape(g.tree)+",security_model=passthrough,readonly=on",
			"-device", "virtio-9p"+dev+",fsdev=fs0,mount_tag=share")
	} else {
		sock := filepath.Join(b.TempDir(), "vfs.sock")
		daemon := exec.CommandContext(ctx, virtiofsd, "--socket-path="+sock, "-o", "source="+g.tree, "-o", "cache=always")
		if err := daemon.Start(); err != nil {
			b.Fatal(err)
		}
		defer daemon.Wait()
		defer daemon.Process.Kill()
		for i := 0; ; i++ {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if i == 500 {
				b.Fatal("virtiofsd did not create its socket")
			}
			time.Sleep(10 * time.Millisecond)
		}
		args = append(args, "-machine", machine+",memory-backend=mem",
			"-object", "memory-backend-memfd,id=mem,size="+strconv.Itoa(memMB)+"M,share=on",
			"-global", "virtio-mmio.force-legacy=off",
			"-chardev", "socket,id=vfs,path="+sock,
			"-device", "vhost-user-fs"+dev+",chardev=vfs,tag=share")
	}
	cmd := exec.CommandContext(ctx, g.qemu, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	steps := map[string]time.Duration{}
	last := start
	var console []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		console = append(console, line)
		if step, ok := strings.CutPrefix(line, "MARK "); ok {
			now := time.Now()
			steps[step] = now.Sub(last)
			last = now
		}
		if strings.HasPrefix(line, "FAIL ") {
			cmd.Process.Kill()
		}
	}
	werr := cmd.Wait()
	if len(steps) != 4 {
		b.Fatalf("%s guest: %d of 4 steps (qemu: %v); console:\n%s", g.kind, len(steps), werr, strings.Join(console, "\n"))
	}
	return steps
}
