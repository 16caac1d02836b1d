package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The terminal suite: a host program runs on a terminal, as a session
// leader whose controlling terminal it is (a shell's job would be), and
// starts a sandbox; code in the sandbox tries to type into that terminal
// (TIOCSTI), to take it over (TIOCSCTTY) and to write to it, through
// /dev/tty and through the descriptors it was given. Nothing may reach the
// terminal, and each attempt must fail.

// injected is what the sandbox tries to put on the host's terminal.
const injected = "echo INJECTED-FROM-SANDBOX"

// TestTerminalNotShared runs the attack in both io modes.
func TestTerminalNotShared(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			master, slave := openTestPty(t)
			report, reportW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer report.Close()
			child := childCommand(t, "tty-host")
			child.Env = append(child.Env, "CC_TEST_TTY_MODE="+mode.name)
			child.Stdin, child.Stdout, child.Stderr = slave, slave, slave
			child.ExtraFiles = []*os.File{reportW} // fd 3: the child's findings
			child.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			slave.Close()
			reportW.Close()
			// Everything written to the terminal, up to the child's exit
			// (then reads fail with EIO: no slave is open any more).
			screen := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(master)
				screen <- b
			}()
			found, _ := io.ReadAll(report)
			werr := child.Wait()
			master.Close()
			out := <-screen
			if werr != nil {
				t.Fatalf("the host program: %v\nterminal:\n%s\nfindings:\n%s", werr, out, found)
			}
			if bytes.Contains(out, []byte("INJECTED")) || bytes.Contains(out, []byte("WRITTEN-TO-TTY")) {
				t.Errorf("the sandbox reached the host's terminal:\n%q", out)
			}
			got := parseFindings(string(found))
			want := map[string][]string{
				"dev_tty_open":      {"ENXIO"}, // no controlling terminal in the sandbox
				"tiocsti_fd0":       {"EPERM"},
				"tiocsti_fd1":       {"EPERM"},
				"tiocsti_fd2":       {"EPERM"},
				"tiocsti_hibits":    {"EPERM"}, // the kernel reads only the low 32 bits
				"tioclinux_fd0":     {"EPERM"},
				"host_tty_queued":   {"0"},
				"pty_own_terminal":  {"ok"},
				"host_tty_fd0_sti":  {"EPERM"},
				"host_tty_fd0_ctty": {"EPERM"},
			}
			if mode.name != "descriptors" {
				// Only a passed descriptor can be the host's terminal itself.
				delete(want, "host_tty_fd0_sti")
				delete(want, "host_tty_fd0_ctty")
			}
			for name, allowed := range want {
				v, ok := got[name]
				if !ok {
					t.Errorf("%s: not probed\n%s", name, found)
				} else if !contains(allowed, v) {
					t.Errorf("%s = %s, want one of %v", name, v, allowed)
				}
			}
		})
	}
}

// openTestPty opens a new pseudo-terminal of the host; the test owns the
// master, the caller closes the slave once the child has it.
func openTestPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		t.Fatalf("opening the pty's peer: %v", errno)
	}
	master = os.NewFile(uintptr(mfd), "ptmx")
	t.Cleanup(func() { master.Close() })
	return master, os.NewFile(sfd, "pty")
}

// parseFindings reads "name=value" lines.
func parseFindings(s string) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	return got
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ttyHost is the host program of TestTerminalNotShared, started on the
// terminal: it runs ttyProbe in a sandbox and writes what it found to
// descriptor 3.
func ttyHost() int {
	report := os.NewFile(3, "report")
	defer report.Close()
	fail := func(err error) int {
		fmt.Fprintf(report, "error=%v\n", err)
		return 1
	}
	opts := []Option{WithCacheDir(os.Getenv("CC_CACHE_DIR"))}
	if os.Getenv("CC_TEST_TTY_MODE") != "descriptors" {
		opts = append(opts, withoutDescriptors())
	}
	ctx := context.Background()
	inst, err := New(ctx, HostImage(), opts...)
	if err != nil {
		return fail(err)
	}
	defer inst.Close()
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		return fail(err)
	}
	if err := inst.WriteFile("/probe", exe, 0o755); err != nil {
		return fail(err)
	}
	probe := func(arg string, stdin *os.File) ([]byte, error) {
		cmd := inst.Command("/probe", arg)
		cmd.Env = []string{childRoleEnv + "=tty-probe", "PATH=/usr/bin:/bin"}
		if stdin != nil {
			cmd.Stdin = stdin
		}
		return cmd.CombinedOutput()
	}
	out, err := probe("plain", nil)
	if err != nil {
		return fail(fmt.Errorf("probe: %v: %s", err, out))
	}
	report.Write(out)
	if os.Getenv("CC_TEST_TTY_MODE") == "descriptors" {
		// The host hands its own terminal to the command as stdin.
		out, err := probe("host-tty", os.Stdin)
		if err != nil {
			return fail(fmt.Errorf("probe on the host's terminal: %v: %s", err, out))
		}
		report.Write(out)
	}
	// A command with a pty of its own writes to its /dev/tty, which must
	// be that pty.
	pty := inst.Command("sh", "-c", "echo PTY-OWN >/dev/tty")
	pty.Tty = true
	var own bytes.Buffer
	pty.Stdout = &own
	if err := pty.Run(); err != nil {
		fmt.Fprintf(report, "pty_own_terminal=%v\n", err)
	} else if !strings.Contains(own.String(), "PTY-OWN") {
		fmt.Fprintf(report, "pty_own_terminal=%q\n", own.String())
	} else {
		fmt.Fprintln(report, "pty_own_terminal=ok")
	}
	// Input the sandbox queued on the host's terminal waits to be read here.
	n, err := unix.IoctlGetInt(0, unix.TIOCINQ)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(report, "host_tty_queued=%d\n", n)
	return 0
}

// ttyProbe runs in the sandbox and tries to reach the host's terminal.
func ttyProbe(arg string) int {
	res := func(name string, err error) {
		var en syscall.Errno
		switch {
		case err == nil:
			fmt.Printf("%s=ok\n", name)
		case errors.As(err, &en):
			fmt.Printf("%s=%s\n", name, unix.ErrnoName(en))
		default:
			fmt.Printf("%s=%v\n", name, err)
		}
	}
	sti := func(fd int, req uint64) error {
		for _, c := range []byte(injected + "\n") {
			b := c
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&b))); e != 0 {
				return e
			}
		}
		return nil
	}
	if arg == "host-tty" {
		// Descriptor 0 is the host's terminal itself.
		res("host_tty_fd0_sti", sti(0, unix.TIOCSTI))
		res("host_tty_fd0_ctty", unix.IoctlSetInt(0, unix.TIOCSCTTY, 1))
		return 0
	}
	fd, err := unix.Open("/dev/tty", unix.O_RDWR, 0)
	res("dev_tty_open", err)
	if err == nil {
		res("dev_tty_sti", sti(fd, unix.TIOCSTI))
		_, err := unix.Write(fd, []byte("WRITTEN-TO-TTY\n"))
		res("dev_tty_write", err)
		unix.Close(fd)
	}
	for i := range 3 {
		res(fmt.Sprintf("tiocsti_fd%d", i), sti(i, unix.TIOCSTI))
	}
	res("tiocsti_hibits", sti(0, 0xdead_beef_0000_0000|unix.TIOCSTI))
	var sel [2]byte // TIOCLINUX subcode 2: set selection; any subcode is refused
	sel[0] = 2
	_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCLINUX, uintptr(unsafe.Pointer(&sel[0])))
	if e != 0 {
		res("tioclinux_fd0", e)
	} else {
		res("tioclinux_fd0", nil)
	}
	return 0
}
