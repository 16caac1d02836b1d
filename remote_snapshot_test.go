package sandbox

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestRemoteSnapshot: a network helper's sandbox is snapshotted into the
// helper's store (excludes honoured) and forks there: each sandbox of the
// snapshot sees its files and none sees another's writes, and a snapshot
// of such a fork stands on the first. The snapshot cannot start or be
// exported on this host, nor start on another helper, and says so.
func TestRemoteSnapshot(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	s, p, r, img := remoteClient(t)
	inst, err := r.New(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	run(t, inst, "echo one > /one && mkdir -p /tmp/x && echo skip > /tmp/x/skip")
	snap, err := inst.Snapshot(ctx, WithExcludes("/tmp/**"))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	a, err := r.New(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := r.New(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if out := run(t, a, "cat /one; test -e /tmp/x/skip && echo leaked; echo a > /two; cat /two"); out != "one\na\n" {
		t.Errorf("sandbox a of the snapshot: %q", out)
	}
	if out := run(t, b, "cat /one; test -e /two && echo shared; echo ok"); out != "one\nok\n" {
		t.Errorf("sandbox b of the snapshot: %q", out)
	}
	snap2, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap2.Close()
	if snap2.Parent() != snap.CacheKey() {
		t.Errorf("the fork's snapshot stands on %q, want %q", snap2.Parent(), snap.CacheKey())
	}
	c, err := r.New(ctx, snap2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if out := run(t, c, "cat /one /two"); out != "one\na\n" {
		t.Errorf("a sandbox of the fork's snapshot: %q", out)
	}

	if _, err := New(ctx, snap); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), s.Addr().String()) {
		t.Errorf("a helper's snapshot started here: %v", err)
	}
	if err := snap.WriteOCILayout(ctx, t.TempDir()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a helper's snapshot exported here: %v", err)
	}
	other := startNetHelper(t, p, "-store", t.TempDir())
	r2, err := DialRemote(ctx, other.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := r2.New(ctx, snap); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), s.Addr().String()) {
		t.Errorf("a helper's snapshot on another helper: %v", err)
	}
	// A Fleet starts it on its own helper, whichever has more room.
	fleet := NewFleet(r2, r)
	fi, err := fleet.New(ctx, snap)
	if err != nil {
		t.Fatalf("a helper's snapshot through a Fleet: %v", err)
	}
	if h := fi.runner.(*helper.NetInstance).Helper(); h != s.Addr().String() {
		t.Errorf("a helper's snapshot through a Fleet started on %s, not on %s", h, s.Addr())
	}
	fi.Close()
	if _, err := NewFleet(r2).New(ctx, snap); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a helper's snapshot through a Fleet without its helper: %v", err)
	}
	if _, err := Build(ctx, []byte("FROM base\n"), WithBuildSource("base", snap)); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a helper's snapshot as a local build's source: %v", err)
	}
	if _, err := Build(ctx, []byte("FROM base\n"), WithBuildSource("base", img)); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a helper's image as a local build's source: %v", err)
	}
}

// TestRemoteSnapshotsAtOnceShare: a client whose share of the helper's
// store is full after one snapshot takes snapshots of several sandboxes
// at once. A snapshot needs room for a byte and may then pass the share
// by its size; taken at once, each would find the room before any was
// counted, and the share would end passed by all of them. One must be
// taken, and the others refused as over the client's maxStoreMB.
func TestRemoteSnapshotsAtOnceShare(t *testing.T) {
	ctx := context.Background()
	_, _, r, img := remoteClient(t, append(withPolicy(t, `{"clients":{"*":{"maxStoreMB":4,"maxInstances":4}}}`), "-store", t.TempDir())...)
	const n = 4
	var insts []*Instance
	for range n {
		inst, err := r.New(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		if out, err := inst.Command("sh", "-c", "head -c 8388608 /dev/urandom > /big").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		insts = append(insts, inst)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, inst := range insts {
		wg.Go(func() {
			snap, err := inst.Snapshot(ctx)
			if err == nil {
				snap.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	taken := 0
	for i, err := range errs {
		switch {
		case err == nil:
			taken++
		case !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "maxStoreMB"):
			t.Errorf("snapshot %d: %v, want a refusal over maxStoreMB", i, err)
		}
	}
	if taken != 1 {
		t.Errorf("%d of %d snapshots of 8 MB taken at once for a client whose maxStoreMB is 4, want 1", taken, n)
	}
}
