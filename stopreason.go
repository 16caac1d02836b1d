package sandbox

import (
	"errors"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// stopWait bounds how long a call whose connection to the sandbox broke
// waits for the stop that broke it: the backends' own bound on a stop.
const stopWait = hv.StopGrace

// stoppedErr returns why the sandbox stopped, for a call that failed with
// err, or nil while it runs. A connection breaks before the sandbox's end
// is recorded (the agent dies first), so when err says the transport
// failed, or the client was closed, stoppedErr first waits, at most
// stopWait, for that end: the call then reports the stop's reason (an
// error matching ErrTimeout, ErrOutOfMemory, ErrNotRunning, or what else
// ended it) rather than the broken connection.
func (i *Instance) stoppedErr(err error) error {
	if errors.Is(err, ipc.ErrTransport) || errors.Is(err, ErrAlreadyClosed) {
		t := time.NewTimer(stopWait)
		defer t.Stop()
		select {
		case <-i.runner.Done():
		case <-t.C:
		}
	}
	return i.alive()
}
