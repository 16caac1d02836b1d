package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// buildEvents collects a build's progress.
type buildEvents struct {
	mu  sync.Mutex
	evs []BuildProgress
}

func (b *buildEvents) add(p BuildProgress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.evs = append(b.evs, p)
}

// ran returns the instructions whose end was not from the cache.
func (b *buildEvents) ran() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ran []string
	for _, e := range b.evs {
		if e.Done && !e.Cached && e.Step > 0 {
			ran = append(ran, e.Instruction)
		}
	}
	return ran
}

// TestRemoteBuild: a Dockerfile built on a network helper, its context
// sent there less what .dockerignore leaves out, its FROM image pulled
// there, its secret and build argument crossing, its progress coming back
// as it happens, and its result started there. Built again by the same
// client, nothing runs and the context is not sent again. Built by
// another client, with the same instructions and its own secret, every
// step runs: neither the first client's cached layers (which hold its
// secret) nor its cache mount are the other's; nor can the other start
// the first's result.
func TestRemoteBuild(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s := startNetHelper(t, p, "-store", t.TempDir())
	ref := testRegistry(t, "127.0.0.1:0")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte("from the context\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "private.env"), []byte("KEY=never sent\n"), 0o600)
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.env\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o750)
	os.Symlink("../f.txt", filepath.Join(dir, "sub", "link"))
	df := []byte("FROM " + ref + "\nARG WHO\nCOPY . /ctx/\n" +
		"RUN --mount=type=secret,id=tok cp /run/secrets/tok /tok && echo $WHO > /who\n" +
		"RUN --mount=type=cache,target=/cache echo run >> /cache/log && cp /cache/log /seen\n")
	build := func(r *Remote, secret string) (*Snapshot, *buildEvents, error) {
		ev := &buildEvents{}
		snap, err := r.Build(ctx, df, WithContextDir(dir), WithBuildArg("WHO", "builder"),
			WithBuildSecret("tok", []byte(secret)), WithBuildProgress(ev.add))
		return snap, ev, err
	}
	alice, err := DialRemote(ctx, s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	snap, ev, err := build(alice, "alice's")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.ran()) != 3 {
		t.Errorf("the first build ran %q; want COPY and both RUNs", ev.ran())
	}
	if snap.onHelper == nil {
		t.Fatal("the build's snapshot does not say it lives on the helper")
	}
	contextSent := s.LayersReceived()
	if contextSent != 1 {
		t.Errorf("the helper was sent %d layers, want the context's one", contextSent)
	}
	inst, err := alice.New(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	out, err := inst.Command("sh", "-c", "cat /ctx/f.txt /ctx/sub/link /tok /who /seen; ls -a /ctx").CombinedOutput()
	want := "from the context\nfrom the context\nalice'sbuilder\nrun\n.\n..\n.dockerignore\nf.txt\nsub\n"
	if err != nil || string(out) != want {
		t.Errorf("the build on the helper:\n%s(%v)\nwant\n%s", out, err, want)
	}
	inst.Close()
	if _, err := New(ctx, snap, WithCacheDir(testCache)); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("the helper's build started here: %v, want errors.ErrUnsupported", err)
	}

	// alice again: nothing runs, nothing is sent.
	again, ev, err := build(alice, "alice's")
	if err != nil {
		t.Fatal(err)
	}
	if ran := ev.ran(); len(ran) != 0 {
		t.Errorf("alice's second build ran %q", ran)
	}
	if again.info.Key != snap.info.Key {
		t.Errorf("alice's second build made %s, not %s", again.info.Key, snap.info.Key)
	}
	if n := s.LayersReceived(); n != contextSent {
		t.Errorf("alice's second build sent %d layers", n-contextSent)
	}

	// bob: the same instructions, his own secret. Naming alice's context
	// by its digest, without sending it, gets him nothing.
	bob, err := DialRemote(ctx, s.Addr().String(), p.client("bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	h := sha256.New()
	if err := dockerfile.WriteContext(ctx, h, dir); err != nil {
		t.Fatal(err)
	}
	_, err = bob.nc.Build(ctx, &ipc.BuildReq{Dockerfile: df, Context: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bob building on alice's context, named by its digest: %v, want fs.ErrNotExist", err)
	}
	// Each layer alice's build made is hers: bob is told it is missing.
	base, err := bob.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, l := range snap.info.Layers {
		if !slices.Contains(base.layers, l) {
			made = append(made, l.String())
		}
	}
	if missing, err := bob.nc.MissingLayers(ctx, made); err != nil || len(made) < 3 || len(missing) != len(made) {
		t.Errorf("bob asking for the %d layers alice's build made: %d missing, %v", len(made), len(missing), err)
	}
	bobs, ev, err := build(bob, "bob's")
	if err != nil {
		t.Fatal(err)
	}
	if ran := ev.ran(); len(ran) != 3 {
		t.Errorf("bob's build of alice's instructions ran %q; want every step (alice's cache is hers)", ran)
	}
	inst, err = bob.New(ctx, bobs)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := inst.Command("cat", "/tok", "/seen").Output(); err != nil || string(out) != "bob'srun\n" {
		t.Errorf("bob's build: %q, %v; want his secret, and a cache mount of his own", out, err)
	}
	inst.Close()
	if _, err := bob.New(ctx, snap); err == nil || !strings.Contains(err.Error(), "not in the helper's store") {
		t.Errorf("bob starting alice's build: %v", err)
	}

	// A fleet builds on one of its helpers and starts the result there.
	fleet := NewFleet(bob)
	defer fleet.Close()
	fsnap, err := fleet.Build(ctx, []byte("FROM "+ref+"\nRUN echo fleet > /f\n"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err = fleet.New(ctx, fsnap)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := inst.Command("cat", "/f").Output(); err != nil || string(out) != "fleet\n" {
		t.Errorf("the fleet's build: %q, %v", out, err)
	}
	inst.Close()
}

// TestRemoteBuildRefusals: what names this machine's things is refused
// before anything is sent; a failing step's error names its line and
// output; a build whose client gives up ends on the helper, leaving
// nothing running.
func TestRemoteBuildRefusals(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s := startNetHelper(t, p, "-store", t.TempDir())
	ref := testRegistry(t, "127.0.0.1:0")
	r, err := DialRemote(ctx, s.Addr().String(), p.client("carol"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	df := []byte("FROM " + ref + "\n")
	agent := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", agent)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, opt := range []BuildOption{WithBuildNetwork(), WithBuildSSH("default", agent),
		WithBuildSource("base", busyboxImage(t)), WithCacheDir(t.TempDir())} {
		if _, err := r.Build(ctx, df, opt); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Remote.Build with %T: %v, want errors.ErrUnsupported", opt, err)
		}
	}
	_, err = r.Build(ctx, []byte("FROM "+ref+"\nRUN echo failing here && false\n"))
	if err == nil || !strings.Contains(err.Error(), "Dockerfile:2") || !strings.Contains(err.Error(), "failing here") ||
		!strings.Contains(err.Error(), "a build on a network helper has none") {
		t.Errorf("a failing step: %v; want its line and output", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		<-started
		cancel()
	}()
	_, err = r.Build(cctx, []byte("FROM "+ref+"\nRUN echo going && sleep 1000\n"), WithBuildProgress(func(p BuildProgress) {
		if p.Output == "going" {
			once.Do(func() { close(started) })
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a build whose context ended: %v", err)
	}
	// leakcheck: the step's sandbox and the build's goroutines end.
}

// startPolicyHelper runs a network helper with a store of its own (whose
// directory it returns) and the policy given as JSON, beside a registry
// that serves busybox (whose reference it returns).
func startPolicyHelper(t *testing.T, p *testPKI, policy string) (s *helper.NetServer, store, ref string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	store = t.TempDir()
	return startNetHelper(t, p, "-store", store, "-policy", file), store, testRegistry(t, "127.0.0.1:0")
}

// TestRemoteBuildHostileClient: a client that crafts its own context
// layer, or Dockerfile, gets errors, not the helper's host: a
// .dockerignore that is a link to a host file is followed within the
// context only (the host file is never read), one that is a pipe is
// refused without waiting on it or naming a host path; variables that
// double forty times are refused; a build whose layers, or whose step
// records, pass the client's share of the store stops, what it added
// counted whether the result keeps it or not.
func TestRemoteBuildHostileClient(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s, store, ref := startPolicyHelper(t, p, `{"clients":{"small":{"maxStoreMB":2},"tiny":{"maxStoreMB":2}}}`)
	r, err := DialRemote(ctx, s.Addr().String(), p.client("mallory"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hostFile := filepath.Join(t.TempDir(), "host.txt")
	os.WriteFile(hostFile, []byte("f.txt\n"), 0o600)
	for _, ignore := range []*tar.Header{
		{Name: ".dockerignore", Typeflag: tar.TypeSymlink, Linkname: hostFile},
		{Name: ".dockerignore", Typeflag: tar.TypeFifo, Mode: 0o644},
	} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: "f.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		tw.Write([]byte("f"))
		tw.WriteHeader(ignore)
		tw.Close()
		sum := sha256.Sum256(b.Bytes())
		diffID := "sha256:" + hex.EncodeToString(sum[:])
		if err := r.nc.PutLayer(ctx, diffID, int64(b.Len()), func(w io.Writer) error { _, err := w.Write(b.Bytes()); return err }); err != nil {
			t.Fatal(err)
		}
		_, err := r.nc.Build(ctx, &ipc.BuildReq{Dockerfile: []byte("FROM " + ref + "\nCOPY f.txt /\n"), Context: diffID}, nil)
		switch {
		case ignore.Typeflag == tar.TypeSymlink && err != nil:
			// The link is followed within the context, where its target
			// is not: no .dockerignore, and f.txt is there to copy.
			t.Errorf(".dockerignore as a link to a host file: %v; want the host file unread", err)
		case ignore.Typeflag == tar.TypeFifo && (err == nil || !strings.Contains(err.Error(), ".dockerignore is a") || strings.Contains(err.Error(), store)):
			t.Errorf(".dockerignore as a pipe: %v; want it refused, naming no host path", err)
		}
	}

	var df strings.Builder
	df.WriteString("FROM " + ref + "\nENV A0=xx\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&df, "ENV A%d=${A%d}${A%d}\n", i, i-1, i-1)
	}
	if _, err := r.Build(ctx, []byte(df.String())); err == nil || !strings.Contains(err.Error(), "bring more than") {
		t.Errorf("a variable doubled forty times: %v", err)
	}

	small, err := DialRemote(ctx, s.Addr().String(), p.client("small"))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	// Records count too: each step's records hold its config, here of
	// half a MiB, so a few steps fill a share of 2 MB.
	df.Reset()
	df.WriteString("FROM " + ref + "\nENV A0=xx\n")
	for i := 1; i <= 18; i++ {
		fmt.Fprintf(&df, "ENV A%d=${A%d}${A%d}\n", i, i-1, i-1)
	}
	for i := range 20 {
		fmt.Fprintf(&df, "WORKDIR /d%d\n", i)
	}
	if _, err := small.Build(ctx, []byte(df.String())); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "maxStoreMB") {
		t.Errorf("a build whose step records pass the client's share: %v", err)
	}

	tiny, err := DialRemote(ctx, s.Addr().String(), p.client("tiny"))
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()
	_, err = tiny.Build(ctx, []byte("FROM "+ref+" AS junk\nRUN head -c 3000000 /dev/zero > /junk && echo s > /small\n"+
		"FROM "+ref+"\nCOPY --from=junk /small /\nRUN echo kept > /kept\n"))
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "maxStoreMB") {
		t.Errorf("a build past the client's share of the store: %v", err)
	}
}

// TestRemotePolicyPids: the helper's policy bounds the processes of a
// client's sandboxes and build steps (maxPids), whatever the client asks
// for: a loop that starts forty processes meets the limit of sixteen.
func TestRemotePolicyPids(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s, _, ref := startPolicyHelper(t, p, `{"clients":{"forky":{"maxPids":16}}}`)
	r, err := DialRemote(ctx, s.Addr().String(), p.client("forky"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const forty = `n=0; while [ $n -lt 40 ]; do sleep 1000 >/dev/null 2>&1 & n=$((n+1)); done; echo tried $n`
	img, err := r.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := r.New(ctx, img, WithPidsLimit(1000))
	if err != nil {
		// A helper that cannot have cgroups (not root, none delegated)
		// says so, for sandboxes and builds alike.
		if !strings.Contains(err.Error(), "cgroup pids controller") {
			t.Fatalf("a sandbox of a client limited to 16 processes: %v", err)
		}
		if _, err := r.Build(ctx, []byte("FROM "+ref+"\nRUN true\n")); err == nil || !strings.Contains(err.Error(), "cgroup pids controller") {
			t.Errorf("a build where the helper has no cgroups, for a client limited to 16 processes: %v", err)
		}
		return
	}
	out, _ := inst.Command("sh", "-c", forty).CombinedOutput()
	inst.Close()
	if !strings.Contains(string(out), "can't fork") {
		t.Errorf("forty processes in a sandbox of a client limited to 16 (it asked for 1000): %q", out)
	}
	var lines []string
	_, err = r.Build(ctx, []byte("FROM "+ref+"\nRUN "+forty+"\n"), WithBuildProgress(func(p BuildProgress) {
		lines = append(lines, p.Output)
	}))
	if !strings.Contains(strings.Join(lines, "\n"), "can't fork") {
		t.Errorf("forty processes in a build step of a client limited to 16: %v, output %q", err, lines)
	}
}
