package sandbox

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
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
