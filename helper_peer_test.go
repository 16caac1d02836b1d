package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// helperDial is the child role of TestHelperServesOnlyParent: another
// process of the same user connects to the helper socket named by its
// argument, says hello and asks for a sandbox, and prints "refused: why"
// or what it got.
func helperDial(path string) int {
	c, err := ipc.ConnectTo(path)
	if err != nil {
		fmt.Println("refused:", err)
		return 0
	}
	defer c.Close()
	fmt.Println("answered:", c.Info())
	return 0
}

// TestHelperServesOnlyParent: a per-sandbox helper answers the process
// that started it and nobody else, not even another process of the same
// user (or root) that finds its socket: the helper checks the peer's pid
// (SO_PEERCRED), not only its uid, before reading a byte.
func TestHelperServesOnlyParent(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", proxy), func(t *testing.T) {
			withHelper(t, proxy)
			inst := hostInstance(t)
			socks, _ := filepath.Glob(socketPrefix(os.Getpid()) + "*.sock")
			var mine []string
			for _, s := range socks {
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", helperPid(t, inst))); err == nil && strings.Contains(string(b), s) {
					mine = append(mine, s)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("the helper's socket: found %v among %v", mine, socks)
			}
			child := childCommand(t, "helper-dial")
			child.Args = append(child.Args, mine[0])
			out, err := child.CombinedOutput()
			if err != nil {
				t.Fatalf("the other process: %v\n%s", err, out)
			}
			if !strings.HasPrefix(string(out), "refused:") {
				t.Errorf("another process of the same user reached the helper: %s", out)
			}
			// The parent itself still gets new connections.
			if b, err := inst.ReadFile("/etc/hostname"); err != nil {
				t.Errorf("the helper's own parent after the refusal: %q %v", b, err)
			}
			if _, err := inst.Command("true").Output(); err != nil {
				t.Errorf("a command after the refusal: %v", err)
			}
		})
	}
}
