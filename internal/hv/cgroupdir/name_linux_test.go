package cgroupdir

import (
	"os"
	"testing"
)

// TestNameOwner: the owner a sandbox cgroup's name gives is the process
// that made it, alive; names Name did not make have none.
func TestNameOwner(t *testing.T) {
	pid, start, ok := owner(Name("0123abcd"))
	if !ok || pid != os.Getpid() || start != ownStart() {
		t.Fatalf("owner(Name(...)) = %d, %d, %v; want %d, %d, true", pid, start, ok, os.Getpid(), ownStart())
	}
	if !ownerAlive(pid, start) {
		t.Error("this process is not alive as the owner of its own cgroup's name")
	}
	if ownerAlive(pid, start+1) {
		t.Error("an owner with another start time is alive: a reused pid would keep a leftover")
	}
	for _, name := range []string{"cc-sandbox", "cc-sandbox.12", "cc-sandbox.x.1.id", "cc-sandbox.0.1.id", "cc-sandbox.12.y.id"} {
		if _, _, ok := owner(name); ok {
			t.Errorf("owner(%q) found one", name)
		}
	}
}
