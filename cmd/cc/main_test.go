package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests run the real cc binary, built once by TestMain (with the race
// detector when the tests have it), or the one CC_TEST_CC_BIN names (the
// rootless run, whose user cannot build).
var (
	ccBin     string
	testCache string // the layer store the tests share
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// What a cc binary leaves running when it exits (a sandbox it did not
	// stop) is handed to this process, so that leakcheck sees it as a
	// child of ours.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "cc-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testCache = filepath.Join(dir, "cache")
	ccBin = os.Getenv("CC_TEST_CC_BIN")
	if ccBin == "" {
		ccBin = filepath.Join(dir, "cc")
		args := []string{"build", "-o", ccBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building cc: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// ccEnv is the environment cc runs with: the shared store unless cache
// names another, and no second of sleep at the exit of a race-enabled
// binary.
func ccEnv(cache string) []string {
	if cache == "" {
		cache = testCache
	}
	env := append(os.Environ(), "CC_CACHE_DIR="+cache)
	if os.Getenv("GORACE") == "" {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// result is what a run of cc gave.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// ccCommand returns the command that runs cc with args.
func ccCommand(ctx context.Context, cache string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, ccBin, args...)
	cmd.Env = ccEnv(cache)
	return cmd
}

// runCC runs cc with args and stdin (nil: none) on the shared store.
func runCC(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return runCCIn(t, "", stdin, args...)
}

// runCCIn is runCC on the store at cache.
func runCCIn(t *testing.T, cache string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := ccCommand(ctx, cache, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("cc %s: %v (%s)", strings.Join(args, " "), err, r)
	}
	return r
}

// want fails t unless r has the exit code and output wanted.
func (r result) want(t *testing.T, code int, stdout string) {
	t.Helper()
	if r.code != code || r.stdout != stdout {
		t.Errorf("got %s; want exit %d and stdout %q", r, code, stdout)
	}
}

// noSandboxLeft fails t when the store at cache still has a sandbox's
// state: what Close removes, and a process killed without Close leaves.
func noSandboxLeft(t *testing.T, cache string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(cache, "instances"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("sandbox state left in the store: %s", filepath.Join(cache, "instances", e.Name()))
	}
}
