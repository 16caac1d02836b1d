package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// changeFiles makes every kind of change in a busybox sandbox.
func changeFiles(t *testing.T, inst *Instance) {
	t.Helper()
	owner := "1000:1000"
	if os.Geteuid() != 0 {
		owner = "0:0" // a rootless sandbox has root only
	}
	run(t, inst, `set -e
		mkdir -p /data/sub
		echo hello > /data/sub/file
		printf 'exec' > /data/tool; chmod 4755 /data/tool
		chown `+owner+` /data/sub/file
		ln -s sub/file /data/link
		ln /data/sub/file /data/hardlink
		rm /bin/vi                       # a whiteout over the image
		mv /etc/group /etc/group.moved   # a rename out of the image
		rm -rf /home && mkdir /home && touch /home/new   # an opaque directory
		mkdir -p /tmp/scratch && echo x > /tmp/scratch/junk
		echo log > /data/app.log`)
}

// checkChanges checks a sandbox made from a snapshot of changeFiles.
func checkChanges(t *testing.T, inst *Instance) {
	t.Helper()
	out := run(t, inst, `cat /data/sub/file; stat -c '%a %u:%g' /data/tool /data/sub/file; readlink /data/link;
		stat -c %h /data/hardlink; ls /bin/vi 2>&1 || true; ls /etc/group 2>&1 || true; ls /etc/group.moved; ls -A /home`)
	want := "hello\n4755 0:0\n644 1000:1000\nsub/file\n2\n" +
		"ls: /bin/vi: No such file or directory\nls: /etc/group: No such file or directory\n/etc/group.moved\nnew\n"
	if out != want {
		t.Errorf("in the fork:\n%s\nwant:\n%s", out, want)
	}
}

// checkFork starts a sandbox from snap, a snapshot of changeFiles taken
// with /tmp/** and *.log excluded, and checks the changes are there (their
// ownership too, as root) and the excluded files are not.
func checkFork(t *testing.T, snap Source) {
	t.Helper()
	fork := newInstance(t, snap)
	if os.Geteuid() == 0 {
		checkChanges(t, fork)
	}
	out := run(t, fork, "ls /tmp /data; cat /data/sub/file")
	if strings.Contains(out, "scratch") || strings.Contains(out, "app.log") || !strings.Contains(out, "hello") {
		t.Errorf("excludes not honoured, or changes lost:\n%s", out)
	}
}

func TestSnapshotAndFork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("unprivileged: ownership inside the sandbox is root's only")
	}
	base := busyboxImage(t)
	inst := newInstance(t, base)
	changeFiles(t, inst)
	snap, err := inst.Snapshot(context.Background(), WithExcludes("/tmp/**", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if len(snap.CacheKey()) != 64 || snap.Parent() != "image-"+strings.TrimPrefix(base.Digest(), "sha256:") {
		t.Errorf("key %q parent %q", snap.CacheKey(), snap.Parent())
	}
	// The instance keeps running.
	run(t, inst, "echo still here")

	checkFork(t, snap)
	// The image itself is untouched.
	if out := run(t, newInstance(t, base), "ls /bin/vi /etc/group"); out != "/bin/vi\n/etc/group\n" {
		t.Errorf("the image changed: %q", out)
	}
}

func TestSnapshotForksAreIsolated(t *testing.T) {
	inst := newInstance(t, busyboxImage(t))
	run(t, inst, "echo shared > /shared")
	snap, err := inst.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	// Started all at once: the leak check of inst covers them.
	forks := make([]*Instance, 10)
	errs := make([]error, 10)
	var wg sync.WaitGroup
	for k := range forks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			forks[k], errs[k] = New(context.Background(), snap, WithCacheDir(testCache))
		}()
	}
	wg.Wait()
	for _, f := range forks {
		if f != nil {
			defer f.Close()
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for k, f := range forks {
		run(t, f, fmt.Sprintf("echo %d > /mine; echo changed-%d > /shared", k, k))
	}
	for k, f := range forks {
		out := run(t, f, "cat /mine /shared; ls /")
		if !strings.HasPrefix(out, fmt.Sprintf("%d\nchanged-%d\n", k, k)) {
			t.Errorf("fork %d sees %q", k, out)
		}
	}
	if out := run(t, inst, "cat /shared; ls /mine 2>&1 || true"); !strings.HasPrefix(out, "shared\n") || !strings.Contains(out, "No such file") {
		t.Errorf("the original sees a fork's writes: %q", out)
	}
}

func TestSnapshotKeys(t *testing.T) {
	base := busyboxImage(t)
	key := func(script string) string {
		inst := newInstance(t, base)
		run(t, inst, script)
		s, err := inst.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.CacheKey()
	}
	a := key("echo same > /f; mkdir /d")
	b := key("sleep 1; mkdir /d; echo same > /f") // later, other order: same content
	c := key("echo same > /f; mkdir /d; chmod 600 /f")
	d := key("echo other > /f; mkdir /d")
	if a != b {
		t.Errorf("equal changes gave different keys: %s %s", a, b)
	}
	if a == c || a == d || c == d {
		t.Errorf("different changes gave equal keys: %s %s %s", a, c, d)
	}
	// A chain: the snapshot's parent is the first snapshot.
	first, err := OpenSnapshot(context.Background(), a, WithCacheDir(testCache))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	inst := newInstance(t, first)
	run(t, inst, "echo more > /g")
	second, err := inst.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.Parent() != a {
		t.Errorf("second's parent %s, want %s", second.Parent(), a)
	}
	if out := run(t, newInstance(t, second), "cat /f /g"); out != "same\nmore\n" {
		t.Errorf("chain: %q", out)
	}
	if _, err := OpenSnapshot(context.Background(), strings.Repeat("0", 64), WithCacheDir(testCache)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an unknown key: %v", err)
	}
}

// TestSnapshotReopenAcrossProcesses: a snapshot taken by another process
// opens here by its key.
func TestSnapshotReopenAcrossProcesses(t *testing.T) {
	busyboxImage(t) // the child loads it into the same store
	out, err := childCommand(t, "snapshot").Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	key := strings.TrimSpace(string(out))
	snap, err := OpenSnapshot(context.Background(), key, WithCacheDir(testCache))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if out := run(t, newInstance(t, snap), "cat /from-the-child"); out != "written by another process\n" {
		t.Errorf("%q", out)
	}
}

// snapshotChild takes a snapshot and prints its key (the "snapshot" role).
func snapshotChild() int {
	ctx := context.Background()
	testCache = os.Getenv("CC_CACHE_DIR")
	img, err := loadBusybox()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	inst, err := New(ctx, img, WithCacheDir(testCache))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer inst.Close()
	if err := inst.WriteFile("/from-the-child", []byte("written by another process\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := inst.Snapshot(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	fmt.Println(s.CacheKey())
	return 0
}

func TestSnapshotExport(t *testing.T) {
	inst := newInstance(t, busyboxImage(t))
	run(t, inst, "mkdir /app && echo 'exported' > /app/data && rm /bin/vi")
	snap, err := inst.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	if err := snap.WriteOCILayout(context.Background(), layout, WithTag("snap:1")); err != nil {
		t.Fatal(err)
	}
	img, err := LoadOCILayout(context.Background(), layout, WithCacheDir(testCache))
	if err != nil {
		t.Fatal(err)
	}
	if out := run(t, newInstance(t, img), "cat /app/data; ls /bin/vi 2>&1 || true"); !strings.HasPrefix(out, "exported\n") || !strings.Contains(out, "No such file") {
		t.Errorf("the exported snapshot: %q", out)
	}
	archive := filepath.Join(dir, "snap.tar")
	if err := snap.WriteDockerArchive(context.Background(), archive, WithTag("snap:1")); err != nil {
		t.Fatal(err)
	}
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo is missing (make test installs it): %v", err)
	}
	out, err := exec.Command(skopeo, "inspect", "docker-archive:"+archive).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"Layers"`) {
		t.Errorf("skopeo inspect: %v\n%s", err, out)
	}
	oci := filepath.Join(dir, "viaskopeo")
	if out, err := exec.Command(skopeo, "copy", "docker-archive:"+archive, "oci:"+oci+":x").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	back, err := LoadOCILayout(context.Background(), oci, WithCacheDir(testCache))
	if err != nil {
		t.Fatal(err)
	}
	if out := run(t, newInstance(t, back), "cat /app/data"); out != "exported\n" {
		t.Errorf("through skopeo: %q", out)
	}
}

// TestSnapshotRedoneChange: a change undone and redone gives a layer the
// snapshot's lineage holds already; the fork still starts (overlayfs takes
// each layer once) and shows the latest state.
func TestSnapshotRedoneChange(t *testing.T) {
	ctx := context.Background()
	step := func(src Source, script string) *Snapshot {
		t.Helper()
		inst := newInstance(t, src)
		run(t, inst, script)
		snap, err := inst.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { snap.Close() })
		return snap
	}
	// The first snapshot of busybox holds the mount points the sandbox
	// added; from there on a layer is /etc and /a alone.
	base := step(busyboxImage(t), "true")
	one := step(base, "echo 1 > /a")
	two := step(one, "echo 2 > /a")
	again := step(two, "echo 1 > /a")
	if again.CacheKey() == one.CacheKey() {
		t.Fatal("a redone change has its first snapshot's key")
	}
	top := func(s *Snapshot) string { return s.info.Layers[len(s.info.Layers)-1].String() }
	if top(again) != top(one) {
		t.Fatalf("the redone change made another layer (%s, first %s): this test needs the same", top(again), top(one))
	}
	if n := len(again.info.Layers); n != len(two.info.Layers) {
		t.Errorf("the snapshot has %d layers, want %d: the lower copy dropped", n, len(two.info.Layers))
	}
	if out := run(t, newInstance(t, again), "cat /a"); out != "1\n" {
		t.Errorf("/a in the fork: %q, want 1", out)
	}
}
