package sandbox

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
)

// The public API on the VM backend: one virtual machine per test group
// (a boot takes seconds under emulation), running the same exec and file
// cases as the namespace backend's streamed path, plus what only a VM
// shows. These tests need QEMU and a guest kernel (make test installs them
// with scripts/ensure-vm-deps.sh): without them they fail, and
// TestVMUnavailable checks the error a host without them gets.

// vmInstance starts a VM sandbox of the host image for a test group.
func vmInstance(t *testing.T, opts ...Option) *Instance {
	t.Helper()
	inst := hostInstance(t, append([]Option{WithBackend(BackendVM)}, opts...)...)
	if inst.fdOK {
		t.Fatal("a VM instance claims its connections carry descriptors")
	}
	return inst
}

func TestVMExec(t *testing.T) {
	inst := vmInstance(t)
	for _, tc := range execCases {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, inst) })
	}
}

func TestVMFiles(t *testing.T) {
	inst := vmInstance(t)
	for _, tc := range fileCases {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, inst) })
	}
	t.Run("TestFS", func(t *testing.T) {
		writeFixture(t, inst, "/fixture")
		sub, err := fs.Sub(inst, "fixture")
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, "a.txt", "dir/b.txt", "dir/sub/c.bin", "dir/sub/empty", "emptydir", "link", "deep/x/y/z/file"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestVMIsolation checks, from inside the guest, that it is a machine of
// its own: its own kernel, none of the host's processes, no network, the
// options applied, and the layers' owners shown as the ids they stand for.
func TestVMIsolation(t *testing.T) {
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in"), []byte("from the host"), 0o644)
	if os.Geteuid() == 0 {
		// A mount below the read-only share must be read-only too.
		sub := filepath.Join(host, "sub")
		os.Mkdir(sub, 0o777)
		if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "mode=0777,size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	}
	rw := t.TempDir()
	if os.Geteuid() == 0 {
		os.Chown(rw, 1_000_000_000, 1_000_000_000) // the sandbox's root may write
	}
	inst := vmInstance(t, WithHostname("guest"), WithMemoryMB(768), WithCPUs(1), WithDiskMB(64),
		WithMount(host, "/mnt/ro"), WithWritableMount(rw, "/mnt/rw"))
	t.Run("probe", func(t *testing.T) { checkIsolation(t, inst) })

	// Its own kernel: another boot, and (here) another release.
	hostBoot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	guestBoot, err := inst.ReadFile("proc/sys/kernel/random/boot_id")
	if err != nil || len(guestBoot) == 0 || bytes.Equal(guestBoot, hostBoot) {
		t.Errorf("guest boot id %q (%v), host's %q: not a kernel of its own", guestBoot, err, hostBoot)
	}
	hostRelease, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	if out := run(t, inst, "uname -r"); out == string(hostRelease) {
		t.Logf("the guest runs the host's kernel release %s (a separate boot all the same)", strings.TrimSpace(out))
	} else {
		t.Logf("guest kernel %s, host kernel %s", strings.TrimSpace(out), strings.TrimSpace(string(hostRelease)))
	}
	if b, err := inst.ReadFile("proc/1/cmdline"); err != nil || !strings.HasPrefix(string(b), "/init") {
		t.Errorf("PID 1 is %q (%v), want the agent as /init", b, err)
	}
	// The guest's limits are the machine's size.
	if out := run(t, inst, "grep -c ^processor /proc/cpuinfo"); out != "1\n" {
		t.Errorf("WithCPUs(1): %s CPUs", out)
	}
	if out := run(t, inst, "awk '/MemTotal/ {print $2}' /proc/meminfo"); out == "" {
		t.Error("no MemTotal")
	} else if kb, _ := strconv.Atoi(strings.TrimSpace(out)); kb > 768<<10 || kb < 512<<10 {
		t.Errorf("WithMemoryMB(768): MemTotal %d kB", kb)
	}
	// WithDiskMB(64) is the writable disk's size.
	if out, err := inst.Command("dd", "if=/dev/zero", "of=/big", "bs=1M", "count=100").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "No space left") {
		t.Errorf("100 MB written under WithDiskMB(64): %v %s", err, out)
	}
	inst.Remove("/big")
	// Started without WithNetwork, a VM has no NIC to enable later.
	if err := inst.SetNetworkEnabled(true); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("enabling egress on a VM started without it: %v, want ErrUnsupported", err)
	}
	// None of the host's processes.
	out := run(t, inst, "ls /proc | grep -c '^[0-9]'")
	if n, _ := strconv.Atoi(strings.TrimSpace(out)); n < 2 || n > 200 {
		t.Errorf("%s processes visible in the guest", out)
	}
	if b, err := inst.ReadFile("proc/" + strconv.Itoa(os.Getpid()) + "/cmdline"); err == nil && bytes.Contains(b, []byte(filepath.Base(os.Args[0]))) {
		t.Errorf("the host's test process is visible in the guest: %q", b)
	}
	// No network: only the loopback interface, and it is up.
	if out := run(t, inst, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"); out != "lo\n" {
		t.Errorf("interfaces: %q, want only lo", out)
	}
	if out := run(t, inst, "hostname; id -u; cat /mnt/ro/in"); out != "guest\n0\nfrom the host" {
		t.Errorf("inside: %q", out)
	}
	// The layer's files belong to the sandbox's root, whatever host id
	// stands for it; so do files written into a writable mount.
	if out := run(t, inst, "stat -c %u:%g /etc/passwd /"); out != "0:0\n0:0\n" {
		t.Errorf("owners in the guest: %q, want root", out)
	}
	if out, err := inst.Command("sh", "-c", "echo x > /mnt/ro/new").CombinedOutput(); err == nil {
		t.Errorf("wrote to a read-only mount: %s", out)
	}
	if os.Geteuid() == 0 {
		if out, err := inst.Command("touch", "/mnt/ro/sub/x").CombinedOutput(); err == nil {
			t.Errorf("wrote below a read-only mount: %s", out)
		}
		if err := inst.WriteFile("/mnt/ro/sub/api.txt", nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("WriteFile below a read-only mount: %v, want EROFS", err)
		}
		if entries, _ := os.ReadDir(filepath.Join(host, "sub")); len(entries) != 0 {
			t.Errorf("files appeared below the read-only share: %v", entries)
		}
	}
	mounts := run(t, inst, "cat /proc/self/mountinfo")
	for _, line := range strings.Split(mounts, "\n") {
		if f := strings.Fields(line); len(f) > 5 && strings.HasPrefix(f[4], "/mnt/r") {
			for _, o := range []string{"nosuid", "nodev"} {
				if !slices.Contains(strings.Split(f[5], ","), o) {
					t.Errorf("the mount at %s is %s, not %s", f[4], f[5], o)
				}
			}
		}
	}
	run(t, inst, "echo written > /mnt/rw/new")
	b, err := os.ReadFile(filepath.Join(rw, "new"))
	if err != nil || string(b) != "written\n" {
		t.Errorf("writable mount: %q %v", b, err)
	}
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(filepath.Join(rw, "new")); err == nil {
			if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 1_000_000_000 {
				t.Errorf("a file the guest's root wrote belongs to host uid %d, want 1000000000", uid)
			}
		}
	}
}

// TestVMUnavailable: a host without QEMU or a guest kernel gets an error
// matching ErrHypervisorUnavailable that names what is missing.
func TestVMUnavailable(t *testing.T) {
	t.Run("QEMU", func(t *testing.T) {
		t.Setenv("CC_QEMU", "/nonexistent/qemu-system-x86_64")
		_, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithBackend(BackendVM))
		if !errors.Is(err, ErrHypervisorUnavailable) || !strings.Contains(err.Error(), "CC_QEMU") {
			t.Errorf("New without QEMU: %v, want ErrHypervisorUnavailable naming CC_QEMU", err)
		}
	})
	t.Run("Kernel", func(t *testing.T) {
		dir := t.TempDir()
		k := filepath.Join(dir, "boot", "vmlinuz-0.0.0-none")
		os.MkdirAll(filepath.Dir(k), 0o755)
		os.WriteFile(k, []byte("not a kernel"), 0o644)
		_, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithBackend(BackendVM), WithKernel(k))
		if !errors.Is(err, ErrHypervisorUnavailable) || !strings.Contains(err.Error(), "modules") {
			t.Errorf("New with a kernel without modules: %v, want ErrHypervisorUnavailable naming its modules", err)
		}
	})
	t.Run("Options", func(t *testing.T) {
		if _, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithKernel("/nonexistent/vmlinuz")); err == nil {
			t.Error("WithKernel of a missing file accepted")
		}
		if _, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithBackend(BackendNamespaces), WithKernel(t.TempDir())); err == nil ||
			!strings.Contains(err.Error(), "WithKernel") {
			t.Errorf("WithKernel on the namespace backend: %v", err)
		}
	})
}

// TestVMSnapshot: the guest's agent sends a VM's changes, read from its
// disk, and they make a snapshot like any other: forked on the namespace
// backend it shows every change, and the same changes made on the
// namespace backend give the same key.
func TestVMSnapshot(t *testing.T) {
	ctx := context.Background()
	base := busyboxImage(t)
	inst := vmInstanceOf(t, base)
	changeFiles(t, inst)
	snap, err := inst.Snapshot(ctx, WithExcludes("/tmp/**", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	run(t, inst, "echo still here") // the VM keeps running

	checkFork(t, snap)

	same := newInstance(t, base)
	changeFiles(t, same)
	nsSnap, err := same.Snapshot(ctx, WithExcludes("/tmp/**", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer nsSnap.Close()
	if nsSnap.CacheKey() != snap.CacheKey() {
		t.Errorf("the same changes: key %s on the VM, %s on the namespace backend", snap.CacheKey(), nsSnap.CacheKey())
	}
}

// vmInstanceOf starts a VM sandbox of src for a test.
func vmInstanceOf(t *testing.T, src Source) *Instance {
	t.Helper()
	return newInstance(t, src, WithBackend(BackendVM))
}

// TestVMEgress: a VM started WithNetwork reaches the host through its NIC,
// the user-space stack and the dialer: small and large transfers, DNS,
// refusal by the dialer, and egress turned off and on again.
func TestVMEgress(t *testing.T) {
	addr, hits := hostServer(t)
	_, port, _ := net.SplitHostPort(addr)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	bulk, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(big) })}
	go srv.Serve(bulk)
	defer srv.Close()
	_, bulkPort, _ := net.SplitHostPort(bulk.Addr().String())
	allow := DefaultDialer(netip.MustParsePrefix("127.0.0.1/32"))
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == "192.0.2.11:"+bulkPort {
			a = bulk.Addr().String()
		}
		return rewrite(addr, allow)(ctx, network, a)
	}
	inst := vmInstance(t, WithNetwork(), WithDialer(dial))
	url := "http://192.0.2.10:" + port + "/"
	if out := run(t, inst, "busybox wget -q -O - "+url); out != "hello from the host" {
		t.Errorf("fetch from the VM: %q", out)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the host server", hits.Load())
	}
	if out := run(t, inst, "busybox wget -q -O - http://192.0.2.11:"+bulkPort+"/ | md5sum"); !strings.HasPrefix(out, fmt.Sprintf("%x", md5.Sum(big))) {
		t.Errorf("8 MiB through the VM's NIC: md5 %q", out)
	}
	if out := run(t, inst, "busybox nslookup localhost 10.0.2.2"); !strings.Contains(out, "127.0.0.1") {
		t.Errorf("DNS through the host: %q", out)
	}
	if out, err := inst.Command("busybox", "nc", "-w", "5", "169.254.169.254", "80").CombinedOutput(); err == nil {
		t.Errorf("reached the metadata address: %q", out)
	}
	if err := inst.SetNetworkEnabled(false); err != nil {
		t.Fatal(err)
	}
	if out, err := inst.Command("busybox", "wget", "-q", "-T", "5", "-O", "-", url).CombinedOutput(); err == nil {
		t.Errorf("fetched with egress off: %q", out)
	}
	if err := inst.SetNetworkEnabled(true); err != nil {
		t.Fatal(err)
	}
	if out := run(t, inst, "busybox wget -q -O - "+url); out != "hello from the host" {
		t.Errorf("fetch after turning egress on again: %q", out)
	}
}
