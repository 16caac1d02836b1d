package sandbox

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestTimeoutErrors: when WithTimeout stops a sandbox, every call that is
// running or starts in that window, whatever its kind (a command's Run or
// Wait, file calls, network calls), returns an error matching ErrTimeout,
// never the transport's EOF or "peer is gone". Calls race the stop from
// several goroutines, in a few rounds, on both I/O paths.
func TestTimeoutErrors(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			for range 3 {
				timeoutRound(t, mode.name == "streamed", mode.opts)
			}
		})
	}
}

// timeoutRound runs one sandbox into its timeout with calls of every kind
// in flight.
func timeoutRound(t *testing.T, streamed bool, opts []Option) {
	inst := hostInstance(t, append([]Option{WithTimeout(300 * time.Millisecond)}, opts...)...)
	check := func(kind string, err error) {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("%s when the timeout stopped the sandbox: %v, want an error matching ErrTimeout", kind, err)
		}
	}
	// On a loaded machine the timeout can come before the setup is done:
	// then the setup's own call is the one that must say so.
	ln, err := inst.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		check("Listen", err)
		return
	}
	addr := ln.Addr().String()
	var wg sync.WaitGroup
	// loop calls f until it fails, and checks that failure.
	loop := func(kind string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if err := f(); err != nil {
					check(kind, err)
					return
				}
			}
			t.Errorf("%s still succeeds long after the timeout", kind)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		check("Run", inst.Command("sleep", "30").Run())
	}()
	go func() {
		defer wg.Done()
		cmd := inst.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			check("Start", err)
			return
		}
		check("Wait", cmd.Wait())
	}()
	loop("ReadFile", func() error { _, err := inst.ReadFile("/etc/hostname"); return err })
	loop("WriteFile", func() error { return inst.WriteFile("/tmp/f", []byte("x"), 0o644) })
	loop("Stat", func() error { _, err := inst.Stat("/etc"); return err })
	loop("ReadDir", func() error { _, err := inst.ReadDir("/etc"); return err })
	loop("Command", func() error { return inst.Command("true").Run() })
	loop("Listen", func() error {
		l, err := inst.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			l.Close()
		}
		return err
	})
	loop("Dial", func() error {
		c, err := inst.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	go func() { // accept what Dial connects, until the listener fails
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if streamed {
		// Accept is a call to the agent only on the streamed path.
		stream, err := inst.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			check("Listen", err)
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := stream.Accept()
				check("Accept", err)
			}()
		}
	}
	wg.Wait()
}
