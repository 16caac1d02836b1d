package sandbox

import (
	"sync"
	"testing"
	"time"
)

// TestSetNetworkEnabledRacesClose: SetNetworkEnabled turning egress on
// and off from several goroutines while Close runs (Close stops the
// sandbox before it takes the egress lock) leaves no egress stack once
// Close has returned; the instance's cleanup checks for leaks.
func TestSetNetworkEnabledRacesClose(t *testing.T) {
	for round := range 10 {
		inst := hostInstance(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, firstErr := 0, error(nil)
		start := make(chan struct{})
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for k := 0; k < 50; k++ {
					err := inst.SetNetworkEnabled(k%2 == 0)
					mu.Lock()
					if err == nil {
						ok++
					} else if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(round) * time.Millisecond) // Close lands at different points of the calls
		inst.Close()
		wg.Wait()
		if round%5 == 0 {
			t.Logf("round %d: %d calls succeeded, then %v", round, ok, firstErr)
		}
		inst.egressMu.Lock()
		st := inst.egress
		inst.egressMu.Unlock()
		if st != nil {
			t.Fatalf("round %d: an egress stack outlived Close", round)
		}
	}
}
