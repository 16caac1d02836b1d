package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The attack of a snapshot: the sandbox keeps a directory (/x/d, full of
// files) and a symlink to a host directory (/x/l) and swaps them as fast
// as it can while the host copies its writable layer. A host that
// resolves "upper/x/d/..." by name while /x/d is the link reads the host
// directory into the image. The host directory holds a file of the same
// name as one of the decoys, so a name looked up through the link is
// found.

// raceDecoys is how many files /x/d holds: the more, the longer a copy of
// the directory takes, and the wider the window of a host that reads by
// name.
const raceDecoys = 200

// hostSecret makes a private host directory holding zz-secret (0600, in a
// 0700 directory) with random content, and returns the directory and the
// content.
func hostSecret(t *testing.T) (string, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	secret = []byte("HOST-SECRET-" + hex.EncodeToString(secret))
	if err := os.WriteFile(filepath.Join(dir, "zz-secret"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

// checkHostIntact fails the test when the host directory or its file lost
// their modes (a host that chmods by name while the sandbox swaps can
// change the modes of the user's own files).
func checkHostIntact(t *testing.T, dir string) {
	t.Helper()
	for p, want := range map[string]os.FileMode{dir: 0o700 | fs.ModeDir, filepath.Join(dir, "zz-secret"): 0o600} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("host file: %v", err)
		} else if fi.Mode() != want {
			t.Errorf("host file %s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

// checkNoSecret walks /x of inst and fails the test when any file there
// holds secret.
func checkNoSecret(t *testing.T, inst *Instance, secret []byte, what string) {
	t.Helper()
	err := fs.WalkDir(inst, "x", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := inst.ReadFile("/" + p)
		if err != nil {
			// The sandbox's root reads every file it made: this one came
			// from elsewhere (a host file owned by an id it does not map).
			return fmt.Errorf("a file the sandbox did not make: %w", err)
		}
		if bytes.Contains(b, secret) {
			return fmt.Errorf("/%s holds the host's secret", p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// swapper is the attacker's part (child role "swapper", run inside a
// sandbox of the host image): it makes /x/d with the decoys and /x/l
// pointing at the host directory os.Args[1], says "ready", and swaps the
// two until it is killed.
func swapper() int {
	host := os.Args[1]
	if err := os.MkdirAll("/x/d", 0o755); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for i := range raceDecoys {
		os.WriteFile(fmt.Sprintf("/x/d/a%03d", i), []byte("decoy"), 0o644)
	}
	// Mode 0: a host that opens it up by name would open up the host's.
	if err := os.WriteFile("/x/d/zz-secret", []byte("decoy"), 0); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := os.Symlink(host, "/x/l"); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	for {
		unix.Renameat2(unix.AT_FDCWD, "/x/d", unix.AT_FDCWD, "/x/l", unix.RENAME_EXCHANGE)
	}
}

// TestSnapshotRace takes snapshots for a bounded time while the sandbox
// swaps a directory with a symlink to a private host directory: no
// snapshot holds the host's file, and the host's files keep their modes.
func TestSnapshotRace(t *testing.T) {
	hostDir, secret := hostSecret(t)
	inst := hostInstance(t)
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteFile("/swapper", exe, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := inst.Command("/swapper", hostDir)
	cmd.Env = []string{childRoleEnv + "=swapper"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("swapper: %q", line)
	}
	ctx := context.Background()
	n, failed := 0, 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); n++ {
		snap, err := inst.Snapshot(ctx)
		if err != nil {
			// Not fatal at once: a host that errs on some races may leak
			// on others, which is what this test is for.
			t.Errorf("snapshot %d: %v", n, err)
			if failed++; failed > 20 {
				t.FailNow()
			}
			continue
		}
		fork := newInstance(t, snap)
		checkNoSecret(t, fork, secret, fmt.Sprintf("snapshot %d", n))
		if err := fork.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d snapshots, %d failed", n, failed)
	checkHostIntact(t, hostDir)
}

// TestBuildRunRace is the same attack through Build: RUN steps leave the
// swapper (a shell loop of mv) running in the background while the build
// snapshots them, and the final image must not hold the host's file.
func TestBuildRunRace(t *testing.T) {
	hostDir, secret := hostSecret(t)
	base := busyboxImage(t)
	var df strings.Builder
	df.WriteString("FROM busybox\n")
	fmt.Fprintf(&df, "RUN mkdir -p /x/d && for i in $(seq 1 %d); do echo decoy > /x/d/a$i; done && echo decoy > /x/d/zz-secret && chmod 0 /x/d/zz-secret && ln -s %s /x/l\n", raceDecoys, hostDir)
	for i := range 20 {
		fmt.Fprintf(&df, "RUN (while true; do mv /x/d /x/t; mv /x/l /x/d; mv /x/d /x/l; mv /x/t /x/d; done) >/dev/null 2>&1 & sleep 0.1; echo step %d\n", i)
	}
	snap, err := Build(context.Background(), []byte(df.String()), WithBuildSource("busybox", base), WithCacheDir(testCache), WithNoCache())
	if err != nil {
		t.Fatal(err)
	}
	inst := newInstance(t, snap)
	checkNoSecret(t, inst, secret, "the built image")
	checkHostIntact(t, hostDir)
}
