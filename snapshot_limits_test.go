package sandbox

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/image"
)

// peakHeapDuring returns how far the heap grew above what it held before
// f, sampled every 10 ms while f runs.
func peakHeapDuring(f func()) uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}()
	f()
	close(done)
	wg.Wait()
	return peak - base
}

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// isTooLarge reports whether err is a size limit's (image.ErrTooLarge).
// Through a helper, the error arrives as its text: image.ErrTooLarge is
// the SDK's own and has no code of its own on the wire.
func isTooLarge(err error) bool {
	return errors.Is(err, image.ErrTooLarge) || err != nil && strings.Contains(err.Error(), image.ErrTooLarge.Error())
}

// hashCost returns the CPU time hashing n zero bytes with SHA-256 takes
// this process, measured on 256 MiB: a snapshot hashes every byte of a
// file, holes included, and an export every byte of its tar.
func hashCost(t *testing.T, n int64) time.Duration {
	t.Helper()
	const sample = 256 << 20
	buf := make([]byte, 1<<20)
	h := sha256.New()
	start := cpuTime(t)
	for range sample / len(buf) {
		h.Write(buf)
	}
	return (cpuTime(t) - start) * time.Duration(n/sample)
}

// TestSnapshotLinkMemory: a sandbox makes 80000 empty files of two links
// each in a directory nested 3.8 KB deep (a few MB of its disk and, in a
// sandbox of 64 MB, none of its memory). The capture remembers the path of every such file until it
// ends, so it held 80000 paths of 3.8 KB: 300 MB of the host's heap, and
// as many more as the sandbox made files. Now what it remembers is
// counted, and past 256 MiB (image.DefaultMaxNameBytes) the snapshot
// fails with an error matching image.ErrTooLarge that names the limit;
// the sandbox stays usable and snapshots again once the files are gone.
func TestSnapshotLinkMemory(t *testing.T) {
	inst := hostInstance(t)
	run(t, inst, `perl -e '
		my $d = "d" x 250; mkdir "/L" or die; chdir "/L" or die;
		for (1..15) { mkdir $d or die; chdir $d or die }
		for my $i (1..80000) { open(my $f, ">", "f$i") or die "$i: $!"; close $f; link("f$i", "g$i") or die }
	'`)
	var err error
	grew := peakHeapDuring(func() {
		var snap *Snapshot
		if snap, err = inst.Snapshot(context.Background()); err == nil {
			snap.Close()
		}
	})
	t.Logf("the heap grew by %d MiB during the snapshot: %.300v", grew>>20, err)
	if !isTooLarge(err) || !strings.Contains(err.Error(), "DefaultMaxNameBytes") {
		t.Fatalf("Snapshot of 80000 links 3.8 KB deep: %.300v; want an error matching image.ErrTooLarge naming DefaultMaxNameBytes", err)
	}
	if len(err.Error()) > 400 {
		t.Errorf("the error is %d bytes long: %.200s...", len(err.Error()), err)
	}
	// 256 MiB kept, and as much again of garbage the collector has not
	// taken back yet.
	if grew > 768<<20 {
		t.Errorf("the heap grew by %d MiB during the snapshot; the links it keeps are bounded by 256 MiB", grew>>20)
	}
	run(t, inst, `rm -rf /L`)
	snap, err := inst.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("a snapshot after the links went: %v", err)
	}
	snap.Close()
}

// TestSnapshotTooLarge: a sandbox makes a sparse file of 33 GiB (no
// disk). A snapshot hashes every byte of its files, holes read as zeros,
// so this one took some 20 s of a core, the sandbox frozen meanwhile,
// and a file of 16 TiB (as cheap to make) would take hours. Now a
// capture whose files pass 32 GiB (image.DefaultMaxBytes, what Unpack
// takes of one layer) fails with an error matching image.ErrTooLarge
// that names the limit, here before reading the file, and the sandbox is
// thawed and usable after it. (The limit counts all files together:
// internal/snapshot's TestCopierDataLimit.)
func TestSnapshotTooLarge(t *testing.T) {
	inst := hostInstance(t)
	run(t, inst, `truncate -s 33G /big`)
	cost := hashCost(t, 33<<30)
	start := cpuTime(t)
	snap, err := inst.Snapshot(context.Background())
	used := cpuTime(t) - start
	if err == nil {
		snap.Close()
	}
	t.Logf("the snapshot used %v of CPU (hashing 33 GiB takes %v): %v", used, cost, err)
	if !isTooLarge(err) || !strings.Contains(err.Error(), "DefaultMaxBytes") {
		t.Fatalf("Snapshot of 33 GiB of holes: %v; want an error matching image.ErrTooLarge naming DefaultMaxBytes", err)
	}
	if used > cost/2 {
		t.Errorf("the refused snapshot used %v of CPU, as much as hashing the file (%v)", used, cost)
	}
	if out := run(t, inst, "echo alive"); out != "alive\n" {
		t.Errorf("the sandbox after a refused snapshot: %q", out)
	}
}

// TestSnapshotDeadlineInsideFile: a sandbox makes a sparse file of 24 GiB
// (no disk, under the 32 GiB limit) and the host snapshots it with a
// 1 s deadline. The context was checked between entries only, so the
// snapshot hashed all 24 GiB of zeros (some 15 s of a core) before it
// noticed; now it is checked at every chunk. The snapshot fails with
// context.DeadlineExceeded having used much less CPU than hashing the
// file takes (measured here, so the test does not depend on this host's
// speed), the sandbox is thawed and usable, and the store keeps no
// temporary files.
func TestSnapshotDeadlineInsideFile(t *testing.T) {
	cache := t.TempDir()
	inst := hostInstance(t, WithCacheDir(cache))
	run(t, inst, `truncate -s 24G /big`)
	cost := hashCost(t, 24<<30)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := cpuTime(t)
	snap, err := inst.Snapshot(ctx)
	used := cpuTime(t) - start
	if err == nil {
		snap.Close()
	}
	t.Logf("the snapshot used %v of CPU (hashing 24 GiB takes %v): %v", used, cost, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Snapshot with a 1 s deadline of a 24 GiB file: %v; want context.DeadlineExceeded", err)
	}
	if used > cost/2 {
		t.Errorf("the snapshot used %v of CPU after a 1 s deadline, as much as hashing the whole file (%v)", used, cost)
	}
	if out := run(t, inst, "echo alive"); out != "alive\n" {
		t.Errorf("the sandbox after a snapshot past its deadline: %q", out)
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "tmp"))
	for _, e := range ents {
		t.Errorf("left in the store's tmp: %s", e.Name())
	}
}

// TestSnapshotExportDeadlineInsideFile: a snapshot holding a sparse file
// of 8 GiB is exported with a 1 s deadline. The export writes every zero
// of it into the tar, hashing and gzipping it, and checked the context
// between entries only; now it is checked at every chunk, and the export
// fails with context.DeadlineExceeded having used much less CPU than
// hashing the file takes, and writes no archive.
func TestSnapshotExportDeadlineInsideFile(t *testing.T) {
	inst := newInstance(t, busyboxImage(t))
	run(t, inst, `truncate -s 8G /big`)
	snap, err := inst.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	cost := hashCost(t, 8<<30)
	out := filepath.Join(t.TempDir(), "a.tar")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := cpuTime(t)
	err = snap.WriteDockerArchive(ctx, out)
	used := cpuTime(t) - start
	t.Logf("the export used %v of CPU (hashing 8 GiB takes %v): %v", used, cost, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WriteDockerArchive with a 1 s deadline of an 8 GiB file: %v; want context.DeadlineExceeded", err)
	}
	if used > cost/2 {
		t.Errorf("the export used %v of CPU after a 1 s deadline, as much as hashing the whole file (%v)", used, cost)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("an export past its deadline left %s", out)
	}
}
