package agent

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter every process of a sandbox runs under. It is written
// here with x/net/bpf rather than taken from a library: the rules need
// argument checks (clone and unshare may not make user namespaces; clone3,
// whose flags sit in memory a filter cannot read, answers ENOSYS so libc
// falls back to clone), and the whole policy fits in one readable table.
//
// Denied with EPERM, as Docker's default profile denies them (and more):
// loading kernels and modules, bpf, perf_event_open, userfaultfd, the
// kernel keyring, open_by_handle_at, every way to mount, pivot_root, swap,
// reboot, setns, setting clocks and time, acct, quotactl, port I/O, the
// obsolete module and vm86 calls, and io_uring (whose rings run work the
// filter never sees, as recent Docker profiles and gVisor refuse it); so
// are mknod of a block device and the terminal ioctls that type into a
// terminal or drive the console (TIOCSTI, TIOCLINUX). A syscall from
// another ABI (x32) is denied outright, and one newer than the policy
// (above newestReviewed) answers ENOSYS, as on a kernel that predates it:
// a kernel newer than the policy adds no call it has not been read for.

// deniedNames are the syscalls the filter denies, by name; arch files map
// them to numbers (a name the architecture lacks is skipped).
var deniedNames = []string{
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"create_module", "get_kernel_syms", "query_module",
	"bpf", "perf_event_open", "userfaultfd",
	"keyctl", "add_key", "request_key",
	"open_by_handle_at", "name_to_handle_at",
	"mount", "umount2", "umount", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
	"fsmount", "fspick", "mount_setattr", "open_tree_attr",
	"swapon", "swapoff", "reboot", "setns",
	"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex",
	"acct", "quotactl", "quotactl_fd", "lookup_dcookie", "nfsservctl", "uselib",
	"iopl", "ioperm", "vm86", "vm86old",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
}

// deniedIoctls are the ioctl requests the filter denies. The kernel takes
// the request as an unsigned int, so the filter compares the argument's
// low 32 bits only: high bits set cannot slip a request past it.
var deniedIoctls = []uint32{
	unix.TIOCSTI,   // pushes input into a terminal: typing into it
	unix.TIOCLINUX, // virtual console selection and control
}

// seccomp_data offsets.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // the low 32 bits on little-endian machines
)

// seccomp return values.
const (
	retAllow = 0x7fff0000 // SECCOMP_RET_ALLOW
	retErrno = 0x00050000 // SECCOMP_RET_ERRNO | errno
	retKill  = 0x80000000 // SECCOMP_RET_KILL_PROCESS
	x32Bit   = 0x40000000 // __X32_SYSCALL_BIT
	newUser  = uint32(unix.CLONE_NEWUSER)
)

// initGuards are the calls that send a signal to a process or thread
// named by its id, and the positions of the id and of the signal among
// their arguments.
var initGuards = []struct {
	name    string
	id, sig uint32
}{{"kill", 0, 1}, {"tkill", 0, 1}, {"tgkill", 0, 2}, {"rt_sigqueueinfo", 0, 1}, {"rt_tgsigqueueinfo", 0, 2}}

// filterProgram builds the filter for this machine's architecture; allowed
// names are left out of the denied list (a VM's agent powers its machine
// off with reboot). With guardInit it also refuses (EPERM) SIGKILL and
// SIGSTOP sent to process 1, the agent, by id (initGuards) and a pidfd of
// process 1: gVisor does not shield a pid namespace's first process from
// them, as Linux does, so without it `kill -KILL 1` in a gVisor sandbox
// ends the agent and `kill -STOP 1` freezes it.
func filterProgram(guardInit bool, allowed ...string) ([]bpf.RawInstruction, error) {
	arch, numbers, ok := archSyscalls()
	if !ok {
		return nil, fmt.Errorf("no seccomp policy for %s", runtime.GOARCH)
	}
	required := []string{"clone", "clone3", "unshare", "ioctl", "io_uring_setup", "io_uring_enter", "io_uring_register", "prlimit64"}
	if guardInit {
		for _, g := range initGuards {
			required = append(required, g.name)
		}
		required = append(required, "pidfd_open")
	}
	for _, name := range required {
		if _, ok := numbers[name]; !ok {
			return nil, fmt.Errorf("the seccomp policy for %s lacks the number of %s", runtime.GOARCH, name)
		}
	}
	errno := func(e unix.Errno) bpf.Instruction { return bpf.RetConstant{Val: retErrno | uint32(e)} }
	var prog []bpf.Instruction
	prog = append(prog,
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: arch, SkipTrue: 1},
		bpf.RetConstant{Val: retKill}, // another architecture's calls: never
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	)
	if runtime.GOARCH == "amd64" {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipFalse: 1},
			errno(unix.EPERM),
		)
	}
	// Every rule below matches one number first, so a number above all
	// of them has its verdict at once: ENOSYS above the newest reviewed,
	// allowed between. gVisor runs the filter for each of the 2,001
	// numbers it knows when it installs it on a thread, most of them
	// above the highest real syscall.
	var highest uint32
	for _, nr := range numbers {
		highest = max(highest, nr)
	}
	if highest > newestReviewed {
		return nil, fmt.Errorf("the seccomp policy for %s names syscall %d, above the newest it was reviewed against (%d)", runtime.GOARCH, highest, newestReviewed)
	}
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: newestReviewed, SkipFalse: 1},
		errno(unix.ENOSYS),
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: highest, SkipFalse: 1},
		bpf.RetConstant{Val: retAllow},
	)
	for _, name := range deniedNames {
		if slices.Contains(allowed, name) {
			continue
		}
		if nr, ok := numbers[name]; ok {
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1}, errno(unix.EPERM))
		}
	}
	// clone3: ENOSYS, so libc uses clone, whose flags the filter can see.
	prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: numbers["clone3"], SkipFalse: 1}, errno(unix.ENOSYS))
	// clone and unshare: no new user namespace.
	for _, name := range []string{"clone", "unshare"} {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: numbers[name], SkipFalse: 4},
			bpf.LoadAbsolute{Off: offArg0, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: newUser, SkipFalse: 1},
			errno(unix.EPERM),
			bpf.LoadAbsolute{Off: offNr, Size: 4}, // restore for the next checks
		)
	}
	// ioctl: not the denied requests (the second argument).
	prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: numbers["ioctl"], SkipFalse: uint8(len(deniedIoctls) + 4)},
		bpf.LoadAbsolute{Off: offArg0 + 8, Size: 4})
	for i, req := range deniedIoctls {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: req, SkipTrue: uint8(len(deniedIoctls) - i)})
	}
	prog = append(prog,
		bpf.Jump{Skip: 1},
		errno(unix.EPERM),
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	)
	// mknod and mknodat: no block devices. Root in a VM's guest holds
	// CAP_MKNOD in the guest's own namespace, where nothing else stops it.
	for _, c := range []struct {
		name string
		arg  uint32 // the mode's argument
	}{{"mknod", 1}, {"mknodat", 2}} {
		nr, ok := numbers[c.name]
		if !ok {
			continue
		}
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 5},
			bpf.LoadAbsolute{Off: offArg0 + 8*c.arg, Size: 4},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: unix.S_IFMT},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.S_IFBLK, SkipFalse: 1},
			errno(unix.EPERM),
			bpf.LoadAbsolute{Off: offNr, Size: 4},
		)
	}
	// prlimit64: no setting another process's limits. The kernel lets a
	// process set the limits of any other of the same uids and gids, with
	// no capability, and a root command is the agent's uid: it would
	// lower the agent's open files, processes or CPU time for good (only
	// CAP_SYS_RESOURCE in the host's namespace raises a hard limit
	// again), so that every later host call fails, and the agent is found
	// by any of its threads' ids as well as by pid 1. Reading limits (a
	// null new limit) and setting one's own (pid 0, as setrlimit does)
	// stay allowed. The new limit is a pointer: both its halves are
	// checked.
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: numbers["prlimit64"], SkipFalse: 8},
		bpf.LoadAbsolute{Off: offArg0, Size: 4}, // a pid_t: the low word
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 5},
		bpf.LoadAbsolute{Off: offArg0 + 8*2, Size: 4}, // the new limit's low half
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 2},
		bpf.LoadAbsolute{Off: offArg0 + 8*2 + 4, Size: 4}, // its high half
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 1},
		errno(unix.EPERM),
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	)
	if guardInit {
		for _, g := range initGuards {
			prog = append(prog,
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: numbers[g.name], SkipFalse: 7},
				bpf.LoadAbsolute{Off: offArg0 + 8*g.id, Size: 4}, // a pid_t: the low word
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipFalse: 4},
				bpf.LoadAbsolute{Off: offArg0 + 8*g.sig, Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(unix.SIGKILL), SkipTrue: 1},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(unix.SIGSTOP), SkipFalse: 1},
				errno(unix.EPERM),
				bpf.LoadAbsolute{Off: offNr, Size: 4},
			)
		}
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: numbers["pidfd_open"], SkipFalse: 4},
			bpf.LoadAbsolute{Off: offArg0, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipFalse: 1},
			errno(unix.EPERM),
			bpf.LoadAbsolute{Off: offNr, Size: 4},
		)
	}
	prog = append(prog, bpf.RetConstant{Val: retAllow})
	return bpf.Assemble(prog)
}

// seccompFilter assembles the filter for the seccomp system call (see
// filterProgram).
func seccompFilter(guardInit bool, allowed ...string) (*unix.SockFprog, error) {
	raw, err := filterProgram(guardInit, allowed...)
	if err != nil {
		return nil, err
	}
	filters := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filters[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &unix.SockFprog{Len: uint16(len(filters)), Filter: &filters[0]}, nil
}

// installSeccomp sets no_new_privs and installs prog on the calling thread,
// and with SECCOMP_FILTER_FLAG_TSYNC in flags on every thread of the
// process; children inherit both from the thread that forks them.
func installSeccomp(prog *unix.SockFprog, flags uintptr) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(prog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("installing the seccomp filter: %w", errno)
	}
	return nil
}

// filtered reports whether the calling thread has a seccomp filter.
func filtered() bool {
	mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return err == nil && mode == unix.SECCOMP_MODE_FILTER
}
