package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ccsandbox/sandbox/internal/agent"
	"golang.org/x/sys/unix"
)

// The isolation suite: a probe (this test binary, copied into a sandbox
// and run as root there) tries what sandboxed code must not do, and the
// test checks each attempt was refused. The list covers
// ../shared/conformance/README.md, section 6.

// probe runs the checks inside a sandbox and prints "name=result" lines:
// "ok" when the attempt succeeded, the errno name when it failed, or what
// it saw.
func probe() int {
	res := func(name string, err error) {
		switch {
		case err == nil:
			fmt.Printf("%s=ok\n", name)
		default:
			var en syscall.Errno
			if errors.As(err, &en) {
				fmt.Printf("%s=%s\n", name, unix.ErrnoName(en))
			} else {
				fmt.Printf("%s=%s\n", name, strings.ReplaceAll(err.Error(), "\n", " "))
			}
		}
	}
	raw := func(nr uintptr, a ...uintptr) error {
		var args [6]uintptr
		copy(args[:], a)
		_, _, e := unix.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
		if e != 0 {
			return e
		}
		return nil
	}
	os.MkdirAll("/probe-mnt", 0o755)
	res("mount", unix.Mount("none", "/probe-mnt", "tmpfs", 0, ""))
	res("unshare_user", unix.Unshare(unix.CLONE_NEWUSER))
	res("unshare_mount", unix.Unshare(unix.CLONE_NEWNS))
	res("setns", raw(unix.SYS_SETNS, 0, 0))
	res("ptrace_agent", unix.PtraceAttach(1))
	res("keyctl", raw(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0))
	res("add_key", raw(unix.SYS_ADD_KEY, 0, 0, 0, 0, 0))
	res("bpf", raw(unix.SYS_BPF, 0, 0, 0))
	res("kexec_load", raw(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0))
	res("init_module", raw(unix.SYS_INIT_MODULE, 0, 0, 0))
	res("finit_module", raw(unix.SYS_FINIT_MODULE, 0, 0, 0))
	res("reboot", unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF))
	res("open_by_handle_at", raw(unix.SYS_OPEN_BY_HANDLE_AT, 0, 0, 0))
	res("perf_event_open", raw(unix.SYS_PERF_EVENT_OPEN, 0, 0, 0, 0, 0))
	res("userfaultfd", raw(unix.SYS_USERFAULTFD, 0))
	res("swapon", raw(unix.SYS_SWAPON, 0, 0))
	var params [120]byte // struct io_uring_params, zeroed: a valid request
	res("io_uring_setup", raw(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params))))
	res("io_uring_enter", raw(unix.SYS_IO_URING_ENTER, ^uintptr(0), 0, 0, 0, 0, 0))
	res("io_uring_register", raw(unix.SYS_IO_URING_REGISTER, ^uintptr(0), 0, 0, 0))
	ts := unix.Timespec{Sec: 1}
	res("clock_settime", raw(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&ts))))
	res("pivot_root", raw(unix.SYS_PIVOT_ROOT, 0, 0))
	slash, _ := unix.BytePtrFromString("/")
	cwd := unix.AT_FDCWD
	res("open_tree_attr", raw(unix.SYS_OPEN_TREE_ATTR, uintptr(cwd), uintptr(unsafe.Pointer(slash)), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC))
	res("mknod_block", unix.Mknod("/tmp/probe-blk", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	writeTo := func(p string) error {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write([]byte("x"))
		return err
	}
	res("write_sysrq_trigger", writeTo("/proc/sysrq-trigger"))
	res("write_core_pattern", writeTo("/proc/sys/kernel/core_pattern"))
	res("write_uevent_helper", writeTo("/sys/kernel/uevent_helper"))
	res("write_agent_exe", writeTo("/proc/1/exe"))
	readLen := func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if len(b) > 0 {
			return fmt.Errorf("%d bytes", len(b))
		}
		return errors.New("empty")
	}
	res("read_kcore", readLen("/proc/kcore"))
	res("read_keys", readLen("/proc/keys"))
	res("read_timer_list", readLen("/proc/timer_list"))
	fw, _ := os.ReadDir("/sys/firmware")
	fmt.Printf("sys_firmware_entries=%d\n", len(fw))
	_, err := os.Stat("/proc/1/environ")
	res("agent_proc_environ", openRead("/proc/1/environ", err))
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	res("raw_socket", err)
	unix.Close(fd)
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	res("packet_socket", err)
	unix.Close(fd)
	c, err := net.DialTimeout("tcp", "169.254.169.254:80", 2*time.Second)
	res("metadata_service", err)
	if c != nil {
		c.Close()
	}
	var blocks []string
	entries, _ := os.ReadDir("/dev")
	for _, e := range entries {
		if fi, err := os.Stat("/dev/" + e.Name()); err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
			blocks = append(blocks, e.Name())
		}
	}
	fmt.Printf("block_devices=%d\n", len(blocks))
	for _, d := range []string{"/dev/mem", "/dev/kmsg", "/var/run/docker.sock", "/run/containerd/containerd.sock"} {
		_, err := os.Stat(d)
		res("exists"+strings.ReplaceAll(d, "/", "_"), err)
	}
	f, err := os.Open("/proc/self/status")
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch k {
			case "Seccomp", "NoNewPrivs", "CapBnd", "CapEff", "CapAmb", "CapInh":
				fmt.Printf("status_%s=%s\n", k, strings.TrimSpace(v))
			}
		}
		f.Close()
	}
	return 0
}

// openRead reads p, after a stat that already failed or succeeded.
func openRead(p string, statErr error) error {
	if statErr != nil {
		return statErr
	}
	_, err := os.ReadFile(p)
	return err
}

func TestIsolation(t *testing.T) { checkIsolation(t, hostInstance(t)) }

// checkIsolation runs the probe in inst and checks every attempt failed.
func checkIsolation(t *testing.T, inst *Instance) {
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteFile("/probe", exe, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := inst.Command("/probe")
	cmd.Env = []string{childRoleEnv + "=probe", "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	refused := func(name string, allowed ...string) {
		t.Helper()
		v, ok := got[name]
		if !ok {
			t.Errorf("%s: not probed\n%s", name, out)
			return
		}
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		t.Errorf("%s = %s, want one of %v", name, v, allowed)
	}
	for _, name := range []string{"mount", "unshare_user", "setns", "keyctl", "add_key", "bpf", "kexec_load",
		"init_module", "finit_module", "reboot", "open_by_handle_at", "perf_event_open", "userfaultfd", "swapon",
		"clock_settime", "pivot_root", "open_tree_attr", "io_uring_setup", "io_uring_enter", "io_uring_register"} {
		refused(name, "EPERM")
	}
	refused("unshare_mount", "EPERM")
	refused("ptrace_agent", "EPERM")
	refused("mknod_block", "EPERM")
	refused("raw_socket", "EPERM")
	refused("packet_socket", "EPERM")
	refused("write_sysrq_trigger", "EROFS", "EACCES", "EPERM", "ENOENT") // the kernel may lack it
	refused("write_core_pattern", "EROFS", "EACCES", "EPERM")
	refused("write_uevent_helper", "EROFS", "EACCES", "EPERM", "ENOENT")
	refused("write_agent_exe", "EACCES", "EPERM", "ETXTBSY")
	refused("agent_proc_environ", "EACCES", "EPERM")
	refused("read_kcore", "empty", "ENOENT")
	refused("read_keys", "empty", "ENOENT")
	refused("read_timer_list", "empty", "ENOENT")
	refused("sys_firmware_entries", "0")
	refused("block_devices", "0")
	refused("exists_dev_mem", "ENOENT")
	refused("exists_dev_kmsg", "ENOENT")
	refused("exists_var_run_docker.sock", "ENOENT")
	refused("exists_run_containerd_containerd.sock", "ENOENT")
	if v := got["metadata_service"]; v == "ok" || v == "" {
		t.Errorf("metadata service reachable: %q", v)
	}
	refused("status_Seccomp", "2")
	refused("status_NoNewPrivs", "1")
	refused("status_CapBnd", fmt.Sprintf("%016x", agent.CapBound()))
	refused("status_CapAmb", "0000000000000000")
	refused("status_CapInh", "0000000000000000")
	if eff, _ := strconv.ParseUint(got["status_CapEff"], 16, 64); eff&^agent.CapBound() != 0 {
		t.Errorf("effective capabilities %s beyond the bounding set", got["status_CapEff"])
	}
}

// TestConfinedOnEveryThread: the agent confines each thread it forks on,
// the first time it forks there (capabilities always; no_new_privs and the
// seccomp filter too in gVisor, where syncing the filter to every thread
// at start is dear); commands started at once land on several threads, and
// every one of them must run with the cut capability sets, no new
// privileges and the filter.
func TestConfinedOnEveryThread(t *testing.T) {
	inst := hostInstance(t)
	want := fmt.Sprintf("CapInh:\t0000000000000000\nCapBnd:\t%016x\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n", agent.CapBound())
	const n = 40
	errs := make(chan error, n)
	for range n {
		go func() {
			out, err := inst.Command("grep", "-E", "^(Cap(Inh|Bnd|Amb)|NoNewPrivs|Seccomp):", "/proc/self/status").Output()
			switch {
			case err != nil:
				errs <- err
			case string(out) != want:
				errs <- fmt.Errorf("confinement of a command:\n%s\nwant\n%s", out, want)
			default:
				errs <- nil
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
