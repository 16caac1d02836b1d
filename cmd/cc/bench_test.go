package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// BenchmarkRunTrue: `cc run host true` (the binary's start, flag parsing,
// New, Run, Close, exit), beside bwrap, the command-line tool with the
// least work to do, running /bin/true with all namespaces unshared on the
// same root (the host's /usr, read-only).
func BenchmarkRunTrue(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if out, err := ccCommand(context.Background(), "", "run", "host", "true").CombinedOutput(); err != nil {
				b.Fatalf("cc run: %v\n%s", err, out)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		bwrap, err := exec.LookPath("bwrap")
		if err != nil {
			b.Fatalf("bwrap is missing (make bench installs Debian's bubblewrap): %v", err)
		}
		args := []string{"--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
			"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"}
		for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
			if target, err := os.Readlink("/" + d); err == nil {
				args = append(args, "--symlink", target, "/"+d)
			}
		}
		args = append(args, "/bin/true")
		for b.Loop() {
			if out, err := exec.Command(bwrap, args...).CombinedOutput(); err != nil {
				b.Fatalf("bwrap: %v\n%s", err, out)
			}
		}
	})
}
