package sandbox

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestSnapshotFrozen: a snapshot is one moment of the sandbox, not a
// smear. Inside, a loop appends its counter to /c/a, then
// to /c/z, as fast as it can; the copy reads /c/a first, then 16 MB of /c/m,
// then /c/z. Frozen, z is a or a-1 in every snapshot; a copy that runs
// beside the loop sees z far ahead of a.
func TestSnapshotFrozen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("this user has no freezer cgroup here (cgroup v1 without delegation): snapshots of a running sandbox are not frozen; TestFreeze checks the error that says so")
	}
	inst := hostInstance(t)
	run(t, inst, "mkdir /c && head -c 16777216 /dev/zero >/c/m")
	cmd := inst.Command("sh", "-c", `i=0; while :; do i=$((i+1)); echo $i >>/c/a; echo $i >>/c/z; done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	read := func(fork *Instance, name string) int {
		b, err := fork.ReadFile(name)
		if err != nil {
			return 0 // not written yet: the counter before 1
		}
		// The last line: each is one write, whole or not there.
		lines := strings.Fields(string(b))
		if len(lines) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(lines[len(lines)-1])
		return n
	}
	ctx := context.Background()
	for n := 0; n < 5; n++ {
		snap, err := inst.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fork := newInstance(t, snap)
		a, z := read(fork, "/c/a"), read(fork, "/c/z")
		if z != a && z != a-1 {
			t.Fatalf("snapshot %d: /c/a=%d /c/z=%d: the sandbox ran while it was copied", n, a, z)
		}
		fork.Close()
	}
}
