package agent

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestFilterProgram runs the seccomp filter in x/net/bpf's interpreter on
// hand-made seccomp_data, checking each rule's verdict. (The interpreter
// loads words big-endian where the kernel loads them in native order, so
// the data is written big-endian here.) The isolation suite in the root
// package checks the same filter in the kernel.
func TestFilterProgram(t *testing.T) {
	arch, nr, ok := archSyscalls()
	if !ok {
		t.Fatal("no policy for this architecture")
	}
	raw, err := filterProgram(false, "reboot")
	if err != nil {
		t.Fatal(err)
	}
	verdict := filterVM(t, raw)
	eperm := uint32(retErrno | uint32(unix.EPERM))
	for _, tc := range []struct {
		name string
		nr   uint32
		args []uint64
		want uint32
	}{
		{"read", uint32(unix.SYS_READ), nil, retAllow},
		{"mount", nr["mount"], nil, eperm},
		{"bpf", nr["bpf"], nil, eperm},
		{"kexec_load", nr["kexec_load"], nil, eperm},
		{"setns", nr["setns"], nil, eperm},
		{"reboot (allowed here)", nr["reboot"], nil, retAllow},
		{"clone3", nr["clone3"], nil, retErrno | uint32(unix.ENOSYS)},
		{"clone of a thread", nr["clone"], []uint64{unix.CLONE_VM | unix.CLONE_THREAD}, retAllow},
		{"clone of a user namespace", nr["clone"], []uint64{unix.CLONE_NEWUSER | unix.CLONE_NEWNS}, eperm},
		{"unshare of a mount namespace", nr["unshare"], []uint64{unix.CLONE_NEWNS}, retAllow},
		{"unshare of a user namespace", nr["unshare"], []uint64{unix.CLONE_NEWUSER}, eperm},
		{"mknodat of a FIFO", nr["mknodat"], []uint64{0, 0, unix.S_IFIFO | 0o644}, retAllow},
		{"mknodat of a block device", nr["mknodat"], []uint64{0, 0, unix.S_IFBLK | 0o600}, eperm},
		{"io_uring_setup", uint32(unix.SYS_IO_URING_SETUP), nil, eperm},
		{"io_uring_enter", uint32(unix.SYS_IO_URING_ENTER), nil, eperm},
		{"io_uring_register", uint32(unix.SYS_IO_URING_REGISTER), nil, eperm},
		{"ioctl TCGETS", uint32(unix.SYS_IOCTL), []uint64{0, unix.TCGETS}, retAllow},
		{"ioctl TIOCSWINSZ", uint32(unix.SYS_IOCTL), []uint64{0, unix.TIOCSWINSZ}, retAllow},
		{"ioctl TIOCSTI", uint32(unix.SYS_IOCTL), []uint64{0, unix.TIOCSTI}, eperm},
		{"ioctl TIOCSTI, high bits set", uint32(unix.SYS_IOCTL), []uint64{0, 0xdeadbeef_00000000 | unix.TIOCSTI}, eperm},
		{"ioctl TIOCLINUX", uint32(unix.SYS_IOCTL), []uint64{0, unix.TIOCLINUX}, eperm},
		{"ioctl with TIOCSTI as its third argument", uint32(unix.SYS_IOCTL), []uint64{0, unix.TCGETS, unix.TIOCSTI}, retAllow},
		{"read with TIOCSTI as its second argument", uint32(unix.SYS_READ), []uint64{0, unix.TIOCSTI}, retAllow},
		{"prlimit64 setting its own limit", nr["prlimit64"], []uint64{0, unix.RLIMIT_NOFILE, 0x7ffc_1234_5678}, retAllow},
		{"prlimit64 reading another's limit", nr["prlimit64"], []uint64{1, unix.RLIMIT_NOFILE, 0, 0x7ffc_1234_5678}, retAllow},
		{"prlimit64 setting the agent's limit", nr["prlimit64"], []uint64{1, unix.RLIMIT_NOFILE, 0x7ffc_1234_5678}, eperm},
		{"prlimit64 setting another's limit", nr["prlimit64"], []uint64{4242, unix.RLIMIT_CPU, 0x7ffc_1234_5678}, eperm},
		{"prlimit64, a new limit at a low word of 0", nr["prlimit64"], []uint64{1, unix.RLIMIT_NOFILE, 0x7ffc_0000_0000}, eperm},
		{"prlimit64, pid 0 in the low word only", nr["prlimit64"], []uint64{0xffffffff_00000000, unix.RLIMIT_NOFILE, 0x7ffc_1234_5678}, retAllow},
	} {
		if got := verdict(arch, tc.nr, tc.args...); got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, got, tc.want)
		}
	}
	// Above the highest number a rule names, everything up to the newest
	// reviewed is allowed, and everything newer answers ENOSYS (the
	// filter says so early); the highest ones named are still denied.
	highest := uint32(0)
	for _, n := range nr {
		highest = max(highest, n)
	}
	for n := highest + 1; n < 4096; n++ {
		want := uint32(retAllow)
		if n > newestReviewed {
			want = retErrno | uint32(unix.ENOSYS)
		}
		if got := verdict(arch, n, 1, uint64(unix.SIGKILL)); got != want {
			t.Fatalf("syscall %d, above the policy's highest (%d), newest reviewed %d: %#x, want %#x", n, highest, newestReviewed, got, want)
		}
	}
	if got := verdict(arch, uint32(unix.SYS_LISTNS)); got != retErrno|uint32(unix.ENOSYS) {
		t.Errorf("listns, newer than the policy: %#x, want ENOSYS", got)
	}
	for _, name := range []string{"mount_setattr", "open_tree_attr", "quotactl_fd", "io_uring_register"} {
		if n, ok := nr[name]; ok {
			if got := verdict(arch, n); got != eperm {
				t.Errorf("%s (%d): %#x, want EPERM", name, n, got)
			}
		}
	}
	if got := verdict(arch^1, uint32(unix.SYS_READ)); got != retKill {
		t.Errorf("another architecture: %#x, want a kill", got)
	}
	if full, _ := filterProgram(false); len(full) <= len(raw) {
		t.Errorf("allowing reboot did not shorten the program (%d, %d instructions)", len(full), len(raw))
	}
}

// TestFilterGuardsInit checks the gVisor agent's filter: SIGKILL and
// SIGSTOP sent to process 1 by id, by any of the calls that name one, and
// a pidfd of process 1 are refused; every other signal to it, and every
// signal to other processes, passes. Without the guard all of them pass.
func TestFilterGuardsInit(t *testing.T) {
	arch, nr, ok := archSyscalls()
	if !ok {
		t.Fatal("no policy for this architecture")
	}
	run := func(guard bool) func(nr uint32, args ...uint64) uint32 {
		raw, err := filterProgram(guard)
		if err != nil {
			t.Fatal(err)
		}
		verdict := filterVM(t, raw)
		return func(nr uint32, args ...uint64) uint32 { return verdict(arch, nr, args...) }
	}
	guarded, plain := run(true), run(false)
	eperm := uint32(retErrno | uint32(unix.EPERM))
	kill, stop, term := uint64(unix.SIGKILL), uint64(unix.SIGSTOP), uint64(unix.SIGTERM)
	for _, tc := range []struct {
		name string
		nr   uint32
		args []uint64
		want uint32
	}{
		{"kill(1, SIGKILL)", nr["kill"], []uint64{1, kill}, eperm},
		{"kill(1, SIGSTOP)", nr["kill"], []uint64{1, stop}, eperm},
		{"kill(1, SIGKILL), high bits in the pid", nr["kill"], []uint64{0xffffffff_00000001, kill}, eperm},
		{"kill(1, SIGTERM)", nr["kill"], []uint64{1, term}, retAllow},
		{"kill(1, 0)", nr["kill"], []uint64{1, 0}, retAllow},
		{"kill(7, SIGKILL)", nr["kill"], []uint64{7, kill}, retAllow},
		{"kill(-1, SIGKILL)", nr["kill"], []uint64{0xffffffff, kill}, retAllow},
		{"tkill(1, SIGSTOP)", nr["tkill"], []uint64{1, stop}, eperm},
		{"tkill(7, SIGKILL)", nr["tkill"], []uint64{7, kill}, retAllow},
		{"tgkill(1, 5, SIGKILL)", nr["tgkill"], []uint64{1, 5, kill}, eperm},
		{"tgkill(1, 5, SIGURG)", nr["tgkill"], []uint64{1, 5, uint64(unix.SIGURG)}, retAllow},
		{"tgkill(7, 7, SIGKILL)", nr["tgkill"], []uint64{7, 7, kill}, retAllow},
		{"rt_sigqueueinfo(1, SIGKILL)", nr["rt_sigqueueinfo"], []uint64{1, kill}, eperm},
		{"rt_tgsigqueueinfo(1, 1, SIGSTOP)", nr["rt_tgsigqueueinfo"], []uint64{1, 1, stop}, eperm},
		{"pidfd_open(1)", nr["pidfd_open"], []uint64{1, 0}, eperm},
		{"pidfd_open(7)", nr["pidfd_open"], []uint64{7, 0}, retAllow},
		{"read", uint32(unix.SYS_READ), []uint64{1, kill}, retAllow},
		{"mount", nr["mount"], nil, eperm},
	} {
		if got := guarded(tc.nr, tc.args...); got != tc.want {
			t.Errorf("guarded %s: %#x, want %#x", tc.name, got, tc.want)
		}
		want := tc.want
		if tc.nr != nr["mount"] {
			want = retAllow
		}
		if got := plain(tc.nr, tc.args...); got != want {
			t.Errorf("unguarded %s: %#x, want %#x", tc.name, got, want)
		}
	}
}

// filterVM loads raw into x/net/bpf's interpreter and returns a function
// that runs it on the seccomp_data of a call. Arguments are 64-bit: the
// low word first, as on little-endian machines, each word big-endian for
// the interpreter.
func filterVM(t *testing.T, raw []bpf.RawInstruction) func(arch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	insns := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		insns[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return func(arch, nr uint32, args ...uint64) uint32 {
		data := make([]byte, 64)
		binary.BigEndian.PutUint32(data[0:], nr)
		binary.BigEndian.PutUint32(data[4:], arch)
		for i, a := range args {
			binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
			binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
		}
		v, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(v)
	}
}
