package sandbox

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/hostilevm"
)

// The VM backend against a hostile guest: CC_QEMU names a script that
// runs this test binary as internal/testutil/hostilevm, which speaks the
// real start exchange and serves the host with the real guest-side mux,
// then misbehaves. Nothing boots, so these tests take no emulated CPU; the
// host side (engine, internal/hv/vm, the ipc client, the mux) is the real
// code.

func init() {
	if os.Getenv(hostilevm.EnvMode) != "" {
		os.Exit(hostilevm.Main())
	}
}

// hostileVM sets CC_QEMU, for the rest of the test, to a script running
// a copy of this test binary as the hostile guest of mode, with env, and
// starts a VM sandbox of the host image on it, in process.
func hostileVM(t *testing.T, mode string, env []string, opts ...Option) *Instance {
	t.Helper()
	// QEMU runs as an unprivileged id of its user namespace, which may not
	// reach the test binary where it is.
	dir := qemuDir(t, 0o755)
	bin := filepath.Join(dir, "hostilevm")
	if err := copyExecutable(bin); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nexport " + hostilevm.EnvMode + "=" + mode + "\n"
	for _, e := range env {
		script += "export '" + e + "'\n"
	}
	script += "exec " + bin + ` "$@"` + "\n"
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CC_QEMU", qemu)
	t.Setenv("CC_VM_ACCEL", "tcg")
	t.Setenv("CC_USE_HELPER", "0") // CC_QEMU is this process's
	return hostInstance(t, append([]Option{WithBackend(BackendVM)}, opts...)...)
}

// qemuDir makes a temporary directory of mode, removed when the test
// ends, outside t.TempDir's, whose parent the unprivileged ids QEMU runs
// as cannot walk.
func qemuDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cc-hostilevm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyExecutable copies this test binary to path, mode 0755.
func copyExecutable(path string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// TestVMSnapshotPastDisk: a VM's snapshot is the tar its guest sends, and
// the host takes no more of it than the VM's disk can hold (twice the disk
// and 16 MiB): a guest started WithDiskMB(16) that sends 128 MiB fails
// with image.ErrTooLarge, naming the disk, where the store took it all.
func TestVMSnapshotPastDisk(t *testing.T) {
	ctx := context.Background()
	inst := hostileVM(t, "bigsnap", []string{hostilevm.EnvSnapMB + "=8,128"}, WithDiskMB(16))
	snap, err := inst.Snapshot(ctx)
	if err != nil {
		t.Fatalf("a snapshot of 8 MiB of a 16 MiB disk: %v", err)
	}
	snap.Close()
	snap, err = inst.Snapshot(ctx)
	if err == nil {
		snap.Close()
		t.Fatal("a snapshot of 128 MiB of a 16 MiB disk went into the store")
	}
	t.Logf("refused: %v", err)
	if !isTooLarge(err) || !strings.Contains(err.Error(), "disk of 16 MiB") {
		t.Errorf("a snapshot of 128 MiB of a 16 MiB disk: %v, want image.ErrTooLarge naming the disk", err)
	}
}

// TestVMCloseGuestNeverAnswers: a guest that never answers the close of
// a listener it handed out does not hold Instance.Close: the sandbox is
// stopped first, and its sockets closed after.
func TestVMCloseGuestNeverAnswers(t *testing.T) {
	inst := hostileVM(t, "listenhang", nil)
	if _, err := inst.Listen("tcp", "127.0.0.1:80"); err != nil {
		t.Fatal(err)
	}
	closeWithinAMinute(t, inst, "a guest that never answers")
}

// closeWithinAMinute closes inst, and fails the test if Close has not
// returned in a minute, waiting on what names.
func closeWithinAMinute(t *testing.T, inst *Instance, what string) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- inst.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close: %v", err)
	case <-time.After(time.Minute):
		t.Fatalf("Instance.Close waited a minute on %s", what)
	}
}

// TestVMCloseGuestNeverAnswersNetwork: a guest that never answers the
// host turning its egress off holds that call, and the lock it takes, but
// not Instance.Close, which stops the sandbox first (its session's end
// fails the call) and takes the lock after.
func TestVMCloseGuestNeverAnswersNetwork(t *testing.T) {
	mark := filepath.Join(qemuDir(t, 0o777), "asked") // the guest writes it
	inst := hostileVM(t, "nethang", []string{hostilevm.EnvMark + "=" + mark}, WithNetwork())
	toggled := make(chan error, 1)
	go func() { toggled <- inst.SetNetworkEnabled(false) }()
	for {
		if _, err := os.Stat(mark); err == nil {
			break // the guest has the request, the host waits for its answer
		}
		select {
		case err := <-toggled:
			t.Fatalf("SetNetworkEnabled(false) returned before the guest had the request: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	closeWithinAMinute(t, inst, "a network call the guest never answers")
	if err := <-toggled; err == nil {
		t.Error("SetNetworkEnabled(false) succeeded though the guest never answered")
	}
}

// TestVMSnapshotWithoutEnd: a snapshot tar that stops after an entry,
// without the end-of-archive marker, is what an agent that failed half
// way sends (archive/tar takes it for the end): the snapshot is refused,
// not taken with every later file missing.
func TestVMSnapshotWithoutEnd(t *testing.T) {
	inst := hostileVM(t, "truncsnap", nil)
	snap, err := inst.Snapshot(context.Background())
	if err == nil {
		snap.Close()
		t.Fatal("a snapshot tar without its end-of-archive marker went into the store")
	}
	if !strings.Contains(err.Error(), "end-of-archive") {
		t.Errorf("Snapshot: %v, want the missing end-of-archive marker named", err)
	}
}

// TestVMStatNamesChecked: the name of a FileInfo is the base of the path
// asked for, as os.Stat's is, never the one the guest sends: a host
// program joining it to a directory of its own stays in that directory.
func TestVMStatNamesChecked(t *testing.T) {
	inst := hostileVM(t, "statname", nil)
	for _, stat := range []func(string) (fs.FileInfo, error){inst.Stat, inst.Lstat} {
		fi, err := stat("/report.txt")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Name() != "report.txt" {
			t.Errorf("Name() = %q, want report.txt (the guest said %q)", fi.Name(), hostilevm.BadName)
		}
	}
}

// TestVMSnapshotSparseEntryPastDisk: a guest's snapshot tar may hold a
// sparse entry, a few bytes standing for a file of any size, which the
// bound on the tar's own bytes misses: what it unpacks to, holes
// included, is bounded the same (twice the disk and 16 MiB), where the
// host unpacked and hashed 8 GiB for a VM of a 16 MiB disk.
func TestVMSnapshotSparseEntryPastDisk(t *testing.T) {
	inst := hostileVM(t, "sparsesnap", []string{hostilevm.EnvSnapMB + "=8192"}, WithDiskMB(16))
	snap, err := inst.Snapshot(context.Background())
	if err == nil {
		snap.Close()
		t.Fatal("a snapshot of an 8 GiB sparse entry of a 16 MiB disk went into the store")
	}
	t.Logf("refused: %v", err)
	if !isTooLarge(err) {
		t.Errorf("a snapshot of an 8 GiB sparse entry of a 16 MiB disk: %v, want image.ErrTooLarge", err)
	}
}

// TestVMSnapshotSparseWhiteout: a guest's snapshot tar of one sparse
// whiteout entry (.wh.big), 1 KiB on the wire naming 64 GiB: the host,
// which reads no whiteout's data but drains it to check the tar's end, is
// held to twice the disk and 16 MiB as for any file, not made to
// zero-fill the size named.
func TestVMSnapshotSparseWhiteout(t *testing.T) {
	inst := hostileVM(t, "sparsewhiteout", []string{hostilevm.EnvSnapMB + "=65536"}, WithDiskMB(16))
	snap, err := inst.Snapshot(context.Background())
	if err == nil {
		snap.Close()
		t.Fatal("a snapshot of a 64 GiB sparse whiteout of a 16 MiB disk went into the store")
	}
	if !isTooLarge(err) || !strings.Contains(err.Error(), "disk of 16 MiB") {
		t.Errorf("a snapshot of a 64 GiB sparse whiteout of a 16 MiB disk: %v, want image.ErrTooLarge naming the disk", err)
	}
}

// TestVMSnapshotCutAfterPAXHeader: a guest whose snapshot tar stops after
// a PAX header and its records (an agent failing between a long-named
// file's two headers) is refused as one without its end-of-archive
// marker, though archive/tar reads it as the end past 1024 bytes.
func TestVMSnapshotCutAfterPAXHeader(t *testing.T) {
	inst := hostileVM(t, "paxcut", nil)
	snap, err := inst.Snapshot(context.Background())
	if err == nil {
		snap.Close()
		t.Fatal("a snapshot tar cut after a PAX header, without its end-of-archive marker, went into the store")
	}
	if !strings.Contains(err.Error(), "end-of-archive") {
		t.Errorf("Snapshot: %v, want the missing end-of-archive marker named", err)
	}
}
