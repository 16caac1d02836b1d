package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExamples builds and runs every program in examples/, as a user
// following the README would, and checks what each prints. Where
// CC_TEST_EXAMPLES_BIN names a directory of them built beforehand (the
// rootless run, whose user cannot reach the module cache), it runs those.
func TestExamples(t *testing.T) {
	want := map[string]string{
		"quickstart": "hello from quickstart",
		"http":       "served from inside the sandbox",
		"helper":     "closed: the helper has exited",
		"vm":         "guest kernel:",
		"dockerfile": "hello, world! (greet 1.0)",
		"snapshot":   "reopened by key, the counter is still: 1",
		"pool":       "3 tool calls ran, each in a fresh sandbox",
		"gvisor":     "sandbox kernel: Linux 4.19.0-gvisor",
	}
	dirs, err := os.ReadDir("examples")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, d := range dirs {
		name := d.Name()
		t.Run(name, func(t *testing.T) {
			marker, ok := want[name]
			if !ok {
				t.Fatalf("examples/%s is not in this test's table", name)
			}
			exe := filepath.Join(bin, name)
			if pre := os.Getenv("CC_TEST_EXAMPLES_BIN"); pre != "" {
				exe = filepath.Join(pre, name)
			} else if out, err := staticBuild(exe, "./examples/"+name).CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe)
			cmd.Env = append(os.Environ(), "CC_CACHE_DIR="+testCache)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(string(out), marker) {
				t.Errorf("output lacks %q:\n%s", marker, out)
			}
		})
	}
}

// staticBuild is go build of a program, linked statically as the gVisor
// example must be (it is runsc too; see package gvisor).
func staticBuild(exe, pkg string) *exec.Cmd {
	cmd := exec.Command("go", "build", "-o", exe, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}
