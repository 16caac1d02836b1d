package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The os/exec behaviour table: the standard library's own expectations
// (src/os/exec/exec_test.go), checked against commands in a sandbox, on the
// descriptor path and on the streamed path.

func TestExec(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			for _, tc := range execCases {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, inst) })
			}
		})
	}
}

var execCases = []struct {
	name string
	fn   func(*testing.T, *Instance)
}{
	{"ExitStatus", testExitStatus},
	{"ProcessStateBeforeRun", testProcessStateBeforeRun},
	{"KilledBySignal", testKilledBySignal},
	{"OutputStderrCapture", testOutputStderrCapture},
	{"StdoutStderrSeparate", testStdoutStderrSeparate},
	{"Stdin10MB", testStdin10MB},
	{"Pipes", testPipes},
	{"StdinClose", testStdinClose},
	{"StdoutPipeBeforeWait", testStdoutPipeBeforeWait},
	{"IgnorePipeErrorOnSuccess", testIgnorePipeErrorOnSuccess},
	{"ClosePipeOnCopyError", testClosePipeOnCopyError},
	{"OrderingErrors", testOrderingErrors},
	{"ContextCancelKillsTree", testContextCancelKillsTree},
	{"ContextCancelStdin", testContextCancelStdin},
	{"WaitInterrupt", testWaitInterrupt},
	{"CancelErrors", testCancelErrors},
	{"Env", testEnv},
	{"Dir", testDir},
	{"NotFound", testNotFound},
	{"Concurrent", testConcurrent},
	{"Tty", testTty},
	{"OSFileStdio", testOSFileStdio},
	{"Signal", testSignal},
}

func testExitStatus(t *testing.T, inst *Instance) {
	for _, code := range []int{1, 42, 255} {
		err := inst.Command("sh", "-c", fmt.Sprintf("exit %d", code)).Run()
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("exit %d: %v (%T), want *ExitError", code, err, err)
		}
		if ee.ExitCode() != code || err.Error() != fmt.Sprintf("exit status %d", code) {
			t.Errorf("exit %d: ExitCode %d, message %q", code, ee.ExitCode(), err)
		}
		if ee.Exited() != true || ee.Success() {
			t.Errorf("exit %d: Exited %v Success %v", code, ee.Exited(), ee.Success())
		}
	}
	cmd := inst.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !cmd.ProcessState.Success() || cmd.ProcessState.ExitCode() != 0 || cmd.ProcessState.String() != "exit status 0" {
		t.Errorf("true: %v", cmd.ProcessState)
	}
}

func testProcessStateBeforeRun(t *testing.T, inst *Instance) {
	cmd := inst.Command("true")
	if got := cmd.ProcessState.ExitCode(); got != -1 {
		t.Errorf("ExitCode before run = %d, want -1", got)
	}
}

func testKilledBySignal(t *testing.T, inst *Instance) {
	cmd := inst.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *ExitError
	if !errors.As(err, &ee) || err.Error() != "signal: killed" || ee.ExitCode() != -1 {
		t.Fatalf("killed: %v", err)
	}
	if ee.Signal() != syscall.SIGKILL || ee.Exited() {
		t.Errorf("Signal %v Exited %v", ee.Signal(), ee.Exited())
	}
	if err := cmd.Process.Kill(); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Kill after exit: %v, want os.ErrProcessDone", err)
	}
}

func testOutputStderrCapture(t *testing.T, inst *Instance) {
	out, err := inst.Command("sh", "-c", "echo out; echo oops >&2; exit 3").Output()
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%v", err)
	}
	if string(out) != "out\n" || string(ee.Stderr) != "oops\n" {
		t.Errorf("stdout %q, ExitError.Stderr %q", out, ee.Stderr)
	}
	// A big stderr keeps its head and tail.
	_, err = inst.Command("sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1").Output()
	if !errors.As(err, &ee) || len(ee.Stderr) > 70<<10 || !bytes.HasSuffix(ee.Stderr, []byte("END\n")) || !bytes.Contains(ee.Stderr, []byte("omitting")) {
		t.Errorf("large stderr: %d bytes, %v", len(ee.Stderr), err)
	}
}

func testStdoutStderrSeparate(t *testing.T, inst *Instance) {
	var stdout, stderr bytes.Buffer
	cmd := inst.Command("sh", "-c", `printf 'a\000b\n'; printf 'e1' >&2; printf 'c\r\n'; printf 'e2\n' >&2`)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "a\x00b\nc\r\n" || stderr.String() != "e1e2\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	out, err := inst.Command("sh", "-c", "echo 1; echo 2 >&2; echo 3").CombinedOutput()
	if err != nil || len(out) != 6 {
		t.Errorf("CombinedOutput %q %v", out, err)
	}
}

func testStdin10MB(t *testing.T, inst *Instance) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	cmd := inst.Command("cat")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("cat of 10 MB: %d bytes back, %v", len(out), err)
	}
	cmd = inst.Command("sha256sum")
	cmd.Stdin = bytes.NewReader(data)
	if out, err = cmd.Output(); err != nil || !strings.HasPrefix(string(out), "7e8f9d") && len(out) < 64 {
		t.Fatalf("sha256sum: %q %v", out, err)
	}
}

func testPipes(t *testing.T, inst *Instance) {
	// Interleaved: write a line, read its echo, on both output streams.
	cmd := inst.Command("sh", "-c", `while read line; do echo "O:$line"; echo "E:$line" >&2; done`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"one", "two", "three"} {
		fmt.Fprintln(stdin, word)
		for _, r := range []struct {
			rd     io.Reader
			prefix string
		}{{stdout, "O:"}, {stderr, "E:"}} {
			want := r.prefix + word + "\n"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(r.rd, got); err != nil || string(got) != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		}
	}
	if err := stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close of StdinPipe: %v", err)
	}
}

func testStdinClose(t *testing.T, inst *Instance) {
	cmd := inst.Command("cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "payload")
	stdin.Close() // cat sees end of file and exits
	if err := cmd.Wait(); err != nil || out.String() != "payload" {
		t.Fatalf("cat: %q %v", out.String(), err)
	}
}

func testStdoutPipeBeforeWait(t *testing.T, inst *Instance) {
	cmd := inst.Command("sh", "-c", "for i in 1 2 3; do echo line$i; done")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(stdout)
	if err != nil || string(b) != "line1\nline2\nline3\n" {
		t.Fatalf("read %q %v", b, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func testIgnorePipeErrorOnSuccess(t *testing.T, inst *Instance) {
	cmd := inst.Command("echo", "foo")
	cmd.Stdin = bytes.NewReader(make([]byte, 10<<20))
	if out, err := cmd.Output(); err != nil || string(out) != "foo\n" {
		t.Fatalf("10 MB stdin to echo: %q %v", out, err)
	}
	cmd = inst.Command("echo", "foo")
	cmd.Stdin = endless{}
	if out, err := cmd.Output(); err != nil || string(out) != "foo\n" {
		t.Fatalf("endless stdin to echo: %q %v", out, err)
	}
}

type endless struct{}

func (endless) Read(b []byte) (int, error) { return len(b), nil }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("failing writer") }

func testClosePipeOnCopyError(t *testing.T, inst *Instance) {
	cmd := inst.Command("yes")
	cmd.Stdout = failingWriter{}
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("yes into a failing writer succeeded")
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("yes into a failing writer hangs")
	}
}

func testOrderingErrors(t *testing.T, inst *Instance) {
	cmd := inst.Command("true")
	if err := cmd.Wait(); err == nil || err.Error() != "exec: not started" {
		t.Errorf("Wait before Start: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err == nil || err.Error() != "exec: already started" {
		t.Errorf("second Start: %v", err)
	}
	if _, err := cmd.StdoutPipe(); err == nil || err.Error() != "exec: StdoutPipe after process started" {
		t.Errorf("StdoutPipe after Start: %v", err)
	}
	if _, err := cmd.StdinPipe(); err == nil || err.Error() != "exec: StdinPipe after process started" {
		t.Errorf("StdinPipe after Start: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || err.Error() != "exec: Wait was already called" {
		t.Errorf("second Wait: %v", err)
	}
	cmd = inst.Command("true")
	cmd.Stdout = io.Discard
	if _, err := cmd.StdoutPipe(); err == nil || err.Error() != "exec: Stdout already set" {
		t.Errorf("StdoutPipe with Stdout set: %v", err)
	}
	if _, err := cmd.Output(); err == nil || err.Error() != "exec: Stdout already set" {
		t.Errorf("Output with Stdout set: %v", err)
	}
	cmd = inst.Command("true")
	cmd.Cancel = func() error { return nil }
	if err := cmd.Run(); err == nil || !strings.Contains(err.Error(), "non-nil Cancel") {
		t.Errorf("Cancel without a context: %v", err)
	}
	if err := (&Cmd{inst: inst}).Run(); err == nil || err.Error() != "exec: no command" {
		t.Errorf("empty Cmd: %v", err)
	}
	// Run starts and waits in one exchange where it can: the state after
	// it is still that of Start and Wait.
	cmd = inst.Command("sh", "-c", "exit 3")
	var ee *ExitError
	if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Run of exit 3: %v", err)
	}
	if cmd.Process == nil || cmd.Process.Pid <= 1 || cmd.ProcessState == nil || cmd.ProcessState.Pid() != cmd.Process.Pid {
		t.Errorf("after Run: Process %v, ProcessState %v", cmd.Process, cmd.ProcessState)
	}
	if err := cmd.Wait(); err == nil || err.Error() != "exec: Wait was already called" {
		t.Errorf("Wait after Run: %v", err)
	}
	if err := cmd.Run(); err == nil || err.Error() != "exec: already started" {
		t.Errorf("second Run: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after Run: %v", err)
	}
	cmd = inst.Command("no-such-program")
	cmd.Run()
	if err := cmd.Wait(); err == nil || err.Error() != "exec: not started" {
		t.Errorf("Wait after a Run that could not start: %v", err)
	}
}

// procs lists the commands of the sandbox's processes, from its /proc.
func procs(t *testing.T, inst *Instance) []string {
	t.Helper()
	entries, err := inst.ReadDir("proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := inst.ReadFile("proc/" + e.Name() + "/comm")
		if err == nil {
			out = append(out, strings.TrimSpace(string(b)))
		}
	}
	return out
}

func testContextCancelKillsTree(t *testing.T, inst *Instance) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := inst.CommandContext(ctx, "sh", "-c", "sleep 1000 & sleep 1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for both sleeps to run.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := 0
		for _, p := range procs(t, inst) {
			if p == "sleep" {
				n++
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleeps did not start: %v", procs(t, inst))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	err := cmd.Wait()
	if err == nil {
		t.Fatal("Wait after cancel returned nil")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		left := 0
		for _, p := range procs(t, inst) {
			if p == "sleep" || p == "sh" {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left after cancel: %v", procs(t, inst))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testContextCancelStdin(t *testing.T, inst *Instance) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := inst.CommandContext(ctx, "cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "x"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := cmd.Wait(); err == nil {
		t.Fatal("Wait after cancel returned nil")
	}
	// Writes fail once the process is gone and Wait closed the pipe.
	var werr error
	for range 100 {
		if _, werr = io.WriteString(stdin, "more"); werr != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if werr == nil {
		t.Fatal("stdin writes still succeed after cancel")
	}
}

func testWaitInterrupt(t *testing.T, inst *Instance) {
	t.Run("InterruptHandledExit0", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := inst.CommandContext(ctx, "sh", "-c", `trap 'exit 0' INT; echo ready; while :; do sleep 0.05; done`)
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		io.ReadFull(out, make([]byte, 6))
		cancel()
		err = cmd.Wait()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait: %v, want an error matching context.Canceled", err)
		}
		if cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("exit code %d", cmd.ProcessState.ExitCode())
		}
	})
	t.Run("InterruptIgnored", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := inst.CommandContext(ctx, "sh", "-c", `trap '' INT; echo ready; while :; do sleep 0.05; done`)
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 100 * time.Millisecond
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		io.ReadFull(out, make([]byte, 6))
		cancel()
		err = cmd.Wait()
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Signal() != syscall.SIGKILL {
			t.Fatalf("Wait: %v, want *ExitError from SIGKILL", err)
		}
	})
	t.Run("GrandchildHoldsPipes", func(t *testing.T) {
		cmd := inst.Command("sh", "-c", "sleep 100 & exit 0")
		cmd.Stdout = new(bytes.Buffer) // a pipe the grandchild keeps open
		cmd.WaitDelay = 100 * time.Millisecond
		err := cmd.Run()
		if !errors.Is(err, ErrWaitDelay) || !errors.Is(err, exec.ErrWaitDelay) {
			t.Fatalf("Run: %v, want ErrWaitDelay", err)
		}
		inst.Command("pkill", "sleep").Run()
	})
}

func testCancelErrors(t *testing.T, inst *Instance) {
	t.Run("ErrorWrappedOnSuccess", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := inst.CommandContext(ctx, "sh", "-c", "read x; exit 0")
		stdin, _ := cmd.StdinPipe()
		cancelErr := errors.New("cancel failed")
		cmd.Cancel = func() error {
			stdin.Close() // let it exit 0 on its own
			return cancelErr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := cmd.Wait(); !errors.Is(err, cancelErr) {
			t.Fatalf("Wait: %v, want it to wrap the Cancel error", err)
		}
	})
	t.Run("ErrProcessDoneIgnored", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := inst.CommandContext(ctx, "sh", "-c", "read x; exit 0")
		stdin, _ := cmd.StdinPipe()
		cmd.Cancel = func() error {
			stdin.Close()
			return fmt.Errorf("already gone: %w", os.ErrProcessDone)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("Wait: %v, want nil", err)
		}
	})
	t.Run("ExitStatusWins", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := inst.CommandContext(ctx, "sh", "-c", "read x; exit 7")
		stdin, _ := cmd.StdinPipe()
		cmd.Cancel = func() error {
			stdin.Close()
			return errors.New("cancel failed")
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cancel()
		var ee *ExitError
		if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("Wait: %v, want exit status 7", err)
		}
	})
}

func testEnv(t *testing.T, inst *Instance) {
	cmd := inst.Command("sh", "-c", "echo $A-$B")
	cmd.Env = []string{"A=1", "B=2", "A=3"}
	if out, err := cmd.Output(); err != nil || string(out) != "3-2\n" {
		t.Errorf("dedup: %q %v", out, err)
	}
	cmd = inst.Command("true")
	cmd.Env = []string{"A=x\x00y"}
	if err := cmd.Run(); err == nil || err.Error() != "exec: environment variable contains NUL" {
		t.Errorf("NUL: %v", err)
	}
	// With an implicit environment, PWD follows Dir; with Env set, not.
	cmd = inst.Command("sh", "-c", "echo $PWD")
	cmd.Dir = "/tmp"
	if out, err := cmd.Output(); err != nil || string(out) != "/tmp\n" {
		t.Errorf("implicit PWD: %q %v", out, err)
	}
	cmd = inst.Command("/usr/bin/env")
	cmd.Dir = "/tmp"
	cmd.Env = []string{"ONLY=1"}
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), "ONLY=1") || strings.Contains(string(out), "PWD=/tmp") {
		t.Errorf("explicit env: %q %v", out, err)
	}
	// The image's PATH is there by default.
	if out, err := inst.Command("sh", "-c", "echo $PATH").Output(); err != nil || !strings.Contains(string(out), "/usr/bin") {
		t.Errorf("default env: %q %v", out, err)
	}
}

func testDir(t *testing.T, inst *Instance) {
	cmd := inst.Command("pwd")
	cmd.Dir = "/usr/bin"
	if out, err := cmd.Output(); err != nil || string(out) != "/usr/bin\n" {
		t.Errorf("Dir: %q %v", out, err)
	}
	cmd = inst.Command("pwd")
	cmd.Dir = "/no/such/dir"
	err := cmd.Run()
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing Dir: %v", err)
	}
}

func testNotFound(t *testing.T, inst *Instance) {
	err := inst.Command("no-such-program").Run()
	var ee *exec.Error
	if !errors.Is(err, exec.ErrNotFound) || !errors.As(err, &ee) || ee.Name != "no-such-program" {
		t.Fatalf("%v (%T), want *exec.Error wrapping exec.ErrNotFound", err, err)
	}
	if err.Error() != `exec: "no-such-program": executable file not found in $PATH` {
		t.Errorf("message %q", err)
	}
	if err := inst.Command("/no/such/file").Run(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing absolute path: %v", err)
	}
}

func testConcurrent(t *testing.T, inst *Instance) {
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := inst.Command("echo", fmt.Sprint(i)).Output()
			if err == nil && string(out) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("command %d printed %q", i, out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func testTty(t *testing.T, inst *Instance) {
	cmd := inst.Command("sh", "-c", "tty; stty size; read x; echo got:$x")
	cmd.Tty = true
	if err := cmd.SetConsoleSize(30, 100); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stdin = strings.NewReader("hello\n")
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if !strings.Contains(s, "/dev/pts/") || !strings.Contains(s, "30 100\n") || !strings.Contains(s, "got:hello") {
		t.Errorf("terminal output %q", s)
	}
	if err := inst.Command("true").SetConsoleSize(1, 1); err == nil {
		t.Error("SetConsoleSize without Tty succeeded")
	}
}

func testOSFileStdio(t *testing.T, inst *Instance) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := inst.Command("echo", "to a host file")
	cmd.Stdout = f
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	if string(b) != "to a host file\n" {
		t.Errorf("host file holds %q", b)
	}
}

func testSignal(t *testing.T, inst *Instance) {
	cmd := inst.Command("sh", "-c", `trap 'echo got TERM; exit 5' TERM; echo ready; while :; do sleep 0.05; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.ReadFull(out, make([]byte, 6))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(out)
	err = cmd.Wait()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 || string(rest) != "got TERM\n" {
		t.Fatalf("SIGTERM: %v, output %q", err, rest)
	}
}

// TestTerminalWaitDelay: WaitDelay bounds Wait for a command with a
// terminal too. A process the command leaves behind that keeps the
// terminal open held Wait until the sandbox's Close where the host holds
// the terminal's descriptor (its read could not be interrupted); now Wait
// returns ErrWaitDelay, the process still running.
func TestTerminalWaitDelay(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			cmd := inst.Command("sh", "-c", `trap "" HUP; (setsid sleep 1000 <&1 >&1 2>&1 &); exit 0`)
			cmd.Tty = true
			cmd.WaitDelay = 100 * time.Millisecond
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrWaitDelay) {
					t.Errorf("Wait: %v, want ErrWaitDelay", err)
				}
			case <-time.After(time.Minute):
				inst.Close()
				<-done
				t.Fatal("Wait still waited a minute after the command exited, with a WaitDelay of 100 ms")
			}
		})
	}
}

// TestCancelDaemonWaitDelay: a process that left the command's group and
// ancestry (setsid, its parent gone) outlives the command's cancel, as
// Cancel's doc says, and holds its output; WaitDelay still bounds Wait,
// and the sandbox's Close ends the daemon.
func TestCancelDaemonWaitDelay(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			ctx, cancel := context.WithCancel(context.Background())
			cmd := inst.CommandContext(ctx, "sh", "-c", `(setsid sh -c 'echo started; exec sleep 1000' &); sleep 1000`)
			cmd.WaitDelay = 100 * time.Millisecond
			startAwaiting(t, cmd, "started")
			cancel()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Error("Wait of a cancelled command: nil error")
				}
			case <-time.After(time.Minute):
				inst.Close()
				<-done
				t.Fatal("Wait still waited a minute after the cancel, with a WaitDelay of 100 ms")
			}
			if err := inst.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
