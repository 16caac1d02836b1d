package sandbox

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// deepTree is a script that makes, in the sandbox's /deep, directories
// whose path from the root is longer than PATH_MAX (4096 bytes), a file
// at the bottom and a hard link to it beside it.
const deepTree = `perl -e '
	my $n = "d" x 200;
	mkdir "/deep" or die; chdir "/deep" or die;
	for (1..24) { mkdir $n or die "mkdir: $!"; chdir $n or die "chdir: $!" }
	open(my $f, ">", "f") or die; print $f "bottom\n"; close $f;
	link("f", "g") or die "link: $!";
'`

// TestSnapshotPathTooLong: a sandbox nests directories until its paths
// pass PATH_MAX, with a hard link at the bottom, and the host snapshots
// it: Snapshot refuses with a short error that names the limit and matches
// ENAMETOOLONG (it was a "link" error carrying the whole 4 KB path), and the sandbox and the store stay usable (the same sandbox
// snapshots again once the tree is gone).
func TestSnapshotPathTooLong(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			run(t, inst, deepTree)
			_, err := inst.Snapshot(context.Background())
			if err == nil {
				t.Fatal("a snapshot of paths longer than PATH_MAX succeeded")
			}
			if !errors.Is(err, syscall.ENAMETOOLONG) || !strings.Contains(err.Error(), "4096") {
				t.Fatalf("Snapshot: %.300v, want an error matching ENAMETOOLONG that names 4096", err)
			}
			if len(err.Error()) > 400 {
				t.Errorf("the error is %d bytes long: %.200s...", len(err.Error()), err)
			}
			run(t, inst, `perl -e 'use File::Path; rmtree("/deep")' 2>/dev/null || rm -rf /deep`)
			snap, err := inst.Snapshot(context.Background())
			if err != nil {
				t.Fatalf("a snapshot after the deep tree went: %v", err)
			}
			defer snap.Close()
			fork := newInstance(t, snap, mode.opts...)
			if out := run(t, fork, "echo ok"); out != "ok\n" {
				t.Errorf("a sandbox of the snapshot: %q", out)
			}
		})
	}
}

// blocksUnder returns the bytes of disk the files below dir take (their
// allocated blocks, not their sizes).
func blocksUnder(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a temp file gone since the listing
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestSnapshotSparse: a sandbox writes a 10 GB file of one data block, a
// file with data between holes and a 32 MB file of written zeros, and the
// host snapshots it: the store grows by little more than the data (the
// holes and zero blocks stay holes), and a sandbox of the snapshot reads
// every file back as it was.
func TestSnapshotSparse(t *testing.T) {
	cache := t.TempDir()
	inst := hostInstance(t, WithCacheDir(cache))
	run(t, inst, `set -e
		dd if=/dev/urandom of=/data bs=4096 count=2 2>/dev/null
		truncate -s 10G /big
		dd if=/data of=/big bs=4096 seek=1234567 conv=notrunc 2>/dev/null
		dd if=/data of=/mixed bs=4096 seek=100 2>/dev/null
		truncate -s 1M /mixed
		dd if=/dev/zero of=/zeros bs=1M count=32 2>/dev/null`)
	before := blocksUnder(t, cache)
	snap, err := inst.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	grew := blocksUnder(t, cache) - before
	t.Logf("the store grew by %d KB", grew>>10)
	if grew > 8<<20 {
		t.Errorf("a snapshot of 10 GB and 32 MB of holes and zeros grew the store by %d MB", grew>>20)
	}
	fork := newInstance(t, snap, WithCacheDir(cache))
	want := run(t, inst, "ls -l /big /mixed /zeros | awk '{print $5, $9}'; cmp /data /mixed -i 0:409600 -n 8192 && echo mixed-ok; dd if=/big bs=4096 skip=1234567 count=2 2>/dev/null | cmp - /data && echo big-ok; cmp /zeros /dev/zero -n 33554432 && echo zeros-ok")
	got := run(t, fork, "ls -l /big /mixed /zeros | awk '{print $5, $9}'; cmp /data /mixed -i 0:409600 -n 8192 && echo mixed-ok; dd if=/big bs=4096 skip=1234567 count=2 2>/dev/null | cmp - /data && echo big-ok; cmp /zeros /dev/zero -n 33554432 && echo zeros-ok")
	if got != want || !strings.Contains(got, "10737418240 /big") || !strings.Contains(got, "zeros-ok") || !strings.Contains(got, "big-ok") || !strings.Contains(got, "mixed-ok") {
		t.Errorf("the snapshot's files:\n%s\nthe sandbox's:\n%s", got, want)
	}
}
