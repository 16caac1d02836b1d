package engine

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// A sweep running in another process while instances start must take
// neither a directory that is being made nor one that is held; it must
// take one that nothing holds. Here the sweeps run on goroutines, which
// flock tells apart as well as processes.
func TestSweepSparesStartingInstances(t *testing.T) {
	root := t.TempDir()
	stale := filepath.Join(root, "stale")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	sweeper := make(chan struct{})
	go func() {
		defer close(sweeper)
		for !stop.Load() {
			sweep(root, slog.New(slog.DiscardHandler))
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []string
	var releases []func()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				dir, release, err := createStateDir(root, newID())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				held = append(held, dir)
				releases = append(releases, release)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	<-sweeper
	sweep(root, slog.New(slog.DiscardHandler))
	for _, dir := range held {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("a held state directory was swept: %v", err)
		}
		os.Remove(dir)
	}
	for _, release := range releases {
		release()
	}
	if left, _ := os.ReadDir(root); len(left) > 0 {
		t.Errorf("after the last release, %s holds %d entries, want none", root, len(left))
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the unheld directory survived the sweep: %v", err)
	}
}
