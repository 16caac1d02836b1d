package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// TestBuildSSH forwards a real ssh-agent, holding a key, to a step that
// lists the agent's keys with the host's ssh-add (the host image is the
// stage's base); a step that requires an agent the build lacks fails.
func TestBuildSSH(t *testing.T) {
	checkBuildLeaks(t)
	for _, tool := range []string{"ssh-agent", "ssh-add", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install Debian's openssh-client (make deps does)", tool)
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	var agentOut bytes.Buffer
	agent.Stdout, agent.Stderr = &agentOut, &agentOut
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	key := filepath.Join(dir, "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cc-build-test-key", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	waitFor(t, "the agent's socket", func() bool { _, err := os.Stat(sock); return err == nil })
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s\n%s", err, out, agentOut.String())
	}

	df := "FROM host\nRUN --mount=type=ssh ssh-add -l > /keys; stat -c %a $SSH_AUTH_SOCK > /mode; echo $SSH_AUTH_SOCK > /sock\n" +
		"RUN --mount=type=ssh,id=deploy,target=/agent,mode=0660 SSH_AUTH_SOCK=/agent ssh-add -l > /deploy-keys\n"
	b, err := buildDockerfile(t, df, t.TempDir(), WithBuildSource("host", HostImage()), WithBuildSSH("default", sock), WithBuildSSH("deploy", sock))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/keys": "cc-build-test-key", "/deploy-keys": "cc-build-test-key", "/mode": "600", "/sock": "/run/buildkit/ssh_agent.0"} {
		if got := b.file(p); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q in it", p, got, want)
		}
	}
	if _, err := buildDockerfile(t, "FROM busybox\nRUN --mount=type=ssh,id=other,required true\n", t.TempDir()); err == nil || !strings.Contains(err.Error(), `ssh agent "other" is required`) {
		t.Errorf("a required agent the build lacks: %v", err)
	}
	if _, err := buildDockerfile(t, "FROM busybox\nRUN true\n", t.TempDir(), WithBuildSSH("x", key)); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("WithBuildSSH of a file: %v", err)
	}
}

// TestBuildCacheMountStore fills a cache mount in a store of its own:
// DiskUsage counts it, Prune drops it (but not while a build holds it),
// and the next build finds it empty.
func TestBuildCacheMountStore(t *testing.T) {
	checkBuildLeaks(t)
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := loadInStore(t, src, cache)
	opts := []BuildOption{WithCacheDir(cache), WithBuildSource("busybox", base), WithPullOptions(WithPullPolicy(PullNever))}
	fill := "FROM busybox\nRUN --mount=type=cache,target=/c head -c 1048576 /dev/zero > /c/blob && ls /c > /ls\n"
	if _, err := Build(context.Background(), []byte(fill), opts...); err != nil {
		t.Fatal(err)
	}
	u, err := DiskUsage(context.Background(), WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if u.CacheMounts != 1 || u.CacheBytes != 1<<20 {
		t.Errorf("DiskUsage: %d cache mounts, %d bytes; want 1, 1 MiB", u.CacheMounts, u.CacheBytes)
	}
	r, err := Prune(context.Background(), WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if r.CacheMounts != 1 || r.CacheBytes != 1<<20 {
		t.Errorf("Prune: %d cache mounts, %d bytes", r.CacheMounts, r.CacheBytes)
	}
	if u, _ := DiskUsage(context.Background(), WithCacheDir(cache)); u.CacheMounts != 0 || u.CacheBytes != 0 {
		t.Errorf("after Prune: %+v", u)
	}
	snap, err := Build(context.Background(), []byte("FROM busybox\nRUN --mount=type=cache,target=/c ls /c > /ls2\n"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	inst := newInstance(t, snap, WithCacheDir(cache))
	eq(t, "/ls2 after Prune", run(t, inst, "cat /ls2"), "")

	// A cache in use stays: Prune runs while a step holds it.
	held := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := Build(context.Background(), []byte("FROM busybox\nRUN --mount=type=cache,target=/c touch /c/held && while [ ! -e /c/go ]; do sleep 0.05; done\n"), append(opts,
			WithBuildProgress(func(p BuildProgress) {
				if strings.HasPrefix(p.Instruction, "RUN") && !p.Done && p.Output == "" {
					once.Do(func() { close(held) })
				}
			}))...)
		done <- err
	}()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("the build ended before its step: %v", err)
	}
	waitFor(t, "the step's mark", func() bool { _, err := os.Stat(cacheMountFile(t, cache, "held")); return err == nil })
	pruned, err := Prune(context.Background(), WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cacheMountFile(t, cache, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pruned.CacheMounts != 0 {
		t.Errorf("Prune removed %d cache mounts in use", pruned.CacheMounts)
	}
}

// TestBuildCacheMountHostile has a step plant symlinks to a host
// directory in a cache mount (absolute host paths, and up and out with
// ..): DiskUsage does not count the host's files through them, and Prune
// removes the links, not what they point at.
func TestBuildCacheMountHostile(t *testing.T) {
	checkBuildLeaks(t)
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := loadInStore(t, src, cache)
	canary := t.TempDir()
	if err := os.WriteFile(filepath.Join(canary, "big"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(canary, 0o755)
	df := "FROM busybox\nARG CANARY\nRUN --mount=type=cache,target=/c ln -s $CANARY /c/abs && ln -s ../../../../../../../../$CANARY /c/up && mkdir /c/d && ln -s / /c/d/root && echo x > /c/small\n"
	if _, err := Build(context.Background(), []byte(df), WithCacheDir(cache), WithBuildSource("busybox", base), WithBuildArg("CANARY", canary)); err != nil {
		t.Fatal(err)
	}
	u, err := DiskUsage(context.Background(), WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if u.CacheMounts != 1 || u.CacheBytes > 4096 {
		t.Errorf("DiskUsage counted %d bytes in %d cache mounts: it followed a link out", u.CacheBytes, u.CacheMounts)
	}
	if _, err := Prune(context.Background(), WithCacheDir(cache)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(canary, "big")); err != nil || fi.Size() != 4<<20 {
		t.Errorf("the host file a link pointed at: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "cachemounts", "*.0")); len(m) != 0 {
		t.Errorf("Prune left %q", m)
	}
}

// cacheMountFile returns the path of name in the store's only cache mount.
func cacheMountFile(t *testing.T, cache, name string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(cache, "cachemounts", "*.0"))
	if len(m) != 1 {
		t.Fatalf("cache mounts %q", m)
	}
	return filepath.Join(m[0], name)
}

// TestBuildParallelStages builds two stages that can finish only if they
// run at the same time: each marks a shared cache mount and waits for the
// other's mark. With two slots they meet; with one, the first gives up
// and the build fails. Progress names each line's stage.
func TestBuildParallelStages(t *testing.T) {
	checkBuildLeaks(t)
	df := "FROM busybox AS a\nARG ID\nRUN --mount=type=cache,id=$ID,target=/c touch /c/a && i=0; while [ ! -e /c/b ]; do i=$((i+1)); [ $i -lt 600 ] || exit 7; sleep 0.05; done; echo a-met-b\n" +
		"FROM busybox AS b\nARG ID\nRUN --mount=type=cache,id=$ID,target=/c touch /c/b && i=0; while [ ! -e /c/a ]; do i=$((i+1)); [ $i -lt 600 ] || exit 7; sleep 0.05; done; echo b-met-a\n" +
		"FROM busybox\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\n"
	b, err := buildDockerfile(t, df, t.TempDir(), WithBuildParallelism(2), WithBuildArg("ID", uniqueID()))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	write := BuildProgressWriter(&out)
	for _, e := range b.events {
		write(e)
	}
	for _, line := range []string{"[a] a-met-b", "[b] b-met-a"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("progress lacks %q:\n%s", line, out.String())
		}
	}
	for _, e := range b.events {
		if e.Output == "a-met-b" && e.Stage != "a" || e.Output == "b-met-a" && e.Stage != "b" {
			t.Errorf("event %+v names the wrong stage", e)
		}
	}
	// One slot: the stages run one after the other, and the first waits
	// in vain.
	short := strings.ReplaceAll(df, "600", "10")
	_, err = buildDockerfile(t, short, t.TempDir(), WithBuildParallelism(1), WithBuildArg("ID", uniqueID()))
	if err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("with one slot: %v", err)
	}
	if _, err := buildDockerfile(t, df, t.TempDir(), WithBuildParallelism(0)); err == nil {
		t.Error("WithBuildParallelism(0) was accepted")
	}
}

// checkBuildLeaks fails t when, after it, goroutines, processes, mounts
// or temporary files of a build remain: in the temporary directory and in
// /dev/shm, where steps' secrets, sockets and tmpfs directories live.
func checkBuildLeaks(t *testing.T) {
	t.Helper()
	leakcheck.Check(t, "cc-build-")
	before := buildPrivateDirs()
	t.Cleanup(func() {
		after := buildPrivateDirs()
		for _, p := range after {
			if !slices.Contains(before, p) {
				t.Errorf("left behind: %s", p)
			}
		}
	})
}

// buildPrivateDirs lists the directories in /dev/shm that this process's
// builds made for steps' secrets, ssh sockets and tmpfs mounts (their
// names carry the process id: other test processes run beside this one).
func buildPrivateDirs() []string {
	var all []string
	for _, kind := range []string{"secret", "ssh", "tmpfs"} {
		m, _ := filepath.Glob(fmt.Sprintf("/dev/shm/cc-build-%s-%d-*", kind, os.Getpid()))
		all = append(all, m...)
	}
	return all
}
