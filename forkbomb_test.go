package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestForkBombSparesAgent: a fork bomb under WithPidsLimit exhausts the
// commands' budget, never the agent's. While the bomb runs, the agent
// keeps serving calls from several goroutines at once (which need threads
// of the agent), a command's start fails with an error that names the
// pids limit, and once the bomb is killed commands run again. The agent's
// death was a race (2 runs in 14), so the bomb goes off several times.
func TestForkBombSparesAgent(t *testing.T) {
	const limit = 32
	inst := limitedInstance(t, "pids", WithPidsLimit(limit))
	events := filepath.Join(workloadCgroup(t, inst, "pids"), "pids.events")
	refused := func() int {
		b, _ := os.ReadFile(events)
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(b), "max ")))
		return n
	}
	for round := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		// Every process of the bomb forks forever and none exits, so the
		// budget stays full (a shell's bomb dies out: sh exits when a fork
		// fails).
		bomb := inst.CommandContext(ctx, "perl", "-e", "while (1) { fork }")
		if err := bomb.Start(); err != nil {
			cancel()
			t.Fatalf("round %d: starting the bomb: %v", round, err)
		}
		before := refused()
		for deadline := time.Now().Add(20 * time.Second); refused() == before && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if refused() == before {
			t.Fatalf("round %d: the bomb never reached the pids limit", round)
		}
		// The agent under the bomb: calls at once, each on a thread of it.
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					if _, err := inst.ReadFile("/etc/hostname"); err != nil {
						t.Errorf("round %d: the agent under a fork bomb: %v", round, err)
						return
					}
				}
			}()
		}
		// A command cannot start while the bomb holds every pid, and the
		// error says why.
		var startErr error
		for i := 0; i < 100 && startErr == nil; i++ {
			startErr = inst.Command("true").Run()
		}
		wg.Wait()
		if startErr == nil {
			t.Errorf("round %d: commands kept starting under a full pids budget", round)
		} else if !errors.Is(startErr, syscall.EAGAIN) || !strings.Contains(startErr.Error(), "WithPidsLimit(32)") {
			t.Errorf("round %d: a start under a full pids budget: %v, want EAGAIN naming WithPidsLimit(32)", round, startErr)
		}
		cancel()
		if err := bomb.Wait(); err == nil {
			t.Errorf("round %d: the killed bomb exited cleanly", round)
		}
		// Every process of the bomb goes, and commands run again.
		current := filepath.Join(filepath.Dir(events), "pids.current")
		var n int
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile(current)
			if n, _ = strconv.Atoi(strings.TrimSpace(string(b))); n == 0 {
				break
			}
		}
		if n != 0 {
			t.Fatalf("round %d: %d processes of the killed bomb remain", round, n)
		}
		var out []byte
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if out, err = inst.Command("echo", "ok").Output(); err == nil {
				break
			}
		}
		if err != nil || string(out) != "ok\n" {
			t.Fatalf("round %d: after the bomb: %q %v (sandbox: %v)", round, out, err, inst.Err())
		}
	}
}
