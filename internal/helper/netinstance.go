package helper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"
	"weak"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// NetInstance is a sandbox on a network helper: every connection of its
// client is attached to it (MsgRemoteAttach) and carries its lifecycle
// messages and the agent's; descriptors cannot cross TCP, so file,
// command and network calls take the streamed path. When the helper dies
// or is cut off, Done fires and Err matches ipc.ErrNotRunning.
type NetInstance struct {
	id    string
	nc    *NetClient
	agent *ipc.Client

	done     chan struct{}
	reason   error // set before done closes
	waitStop context.CancelFunc

	closeOnce sync.Once
	closeErr  error

	streamsMu sync.Mutex
	streams   []weak.Pointer[net.TCPConn] // guarded by streamsMu: the connections beneath the streams handed out
}

// stream is the agent client's stream hook: the stream does without the
// user timeout (see streamUserTimeout), and is kept, weakly, so that it
// can be closed when the sandbox ends or its helper is found gone: a
// program writing to a sandbox's connection or a command's input while
// the network to the helper is cut would otherwise wait until TCP gives
// up. A stream the program has dropped is not held.
func (ni *NetInstance) stream(c net.Conn) {
	c, _ = beneath(c)
	streamUserTimeout(c)
	raw, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	ni.streamsMu.Lock()
	defer ni.streamsMu.Unlock()
	if len(ni.streams) == cap(ni.streams) { // forget those the program has dropped
		ni.streams = slices.DeleteFunc(ni.streams, func(w weak.Pointer[net.TCPConn]) bool { return w.Value() == nil })
	}
	ni.streams = append(ni.streams, weak.Make(raw))
}

// closeStreams closes the streams handed out that are still open.
func (ni *NetInstance) closeStreams() {
	ni.streamsMu.Lock()
	streams := ni.streams
	ni.streams = nil
	ni.streamsMu.Unlock()
	for _, w := range streams {
		if c := w.Value(); c != nil {
			c.Close()
		}
	}
}

// closeTimeout bounds MsgInstanceClose: a helper that neither answers nor
// breaks the connection by then is taken for gone.
const closeTimeout = 30 * time.Second

// dial opens a connection to the helper attached to the instance. A
// helper that no longer has it answers ErrInvalidHandle, which becomes an
// error matching ipc.ErrNotRunning.
func (ni *NetInstance) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	conn, err := ni.nc.dial(ctx)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	err = ipc.CallOn(conn, ipc.MsgRemoteAttach, &ipc.InstanceAttachReq{ID: ni.id}, &ipc.Empty{})
	if !stop() {
		err = fmt.Errorf("attaching to sandbox %s on %s: %w", ni.id, ni.nc.addr, ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	if err != nil {
		conn.Close()
		if errors.Is(err, ipc.ErrInvalidHandle) {
			return nil, fmt.Errorf("sandbox %s on %s: %w (%v)", ni.id, ni.nc.addr, ipc.ErrNotRunning, err)
		}
		return nil, err
	}
	return conn, nil
}

// wait waits for the sandbox to stop, or the helper to go.
func (ni *NetInstance) wait(ctx context.Context) {
	err := ni.agent.Do(ctx, ipc.MsgInstanceWait, nil, nil)
	switch {
	case err == nil, ctx.Err() != nil:
		ni.reason = nil // closed
	case errors.Is(err, ipc.ErrTransport), errors.Is(err, ipc.ErrAlreadyClosed):
		ni.reason = fmt.Errorf("sandbox %s: its helper %s is gone or cut off: %w", ni.id, ni.nc.addr, ipc.ErrNotRunning)
	default:
		if ie, ok := errors.AsType[*ipc.IPCError](err); ok {
			err = ie.Bare()
		}
		ni.reason = err
	}
	ni.agent.Close() // calls in flight fail at once
	ni.closeStreams()
	close(ni.done)
}

// ID returns the sandbox's id on its helper.
func (ni *NetInstance) ID() string { return ni.id }

// Helper returns the address of the sandbox's helper.
func (ni *NetInstance) Helper() string { return ni.nc.addr }

// Client returns the client of the sandbox's agent, through the helper.
func (ni *NetInstance) Client() *ipc.Client { return ni.agent }

// PassesFDs reports false: descriptors cannot cross TCP.
func (ni *NetInstance) PassesFDs() bool { return false }

// Done returns a channel closed once the sandbox has stopped, or its
// helper has gone.
func (ni *NetInstance) Done() <-chan struct{} { return ni.done }

// Err returns why the sandbox stopped: nil while it runs and after Close.
func (ni *NetInstance) Err() error {
	select {
	case <-ni.done:
		return ni.reason
	default:
		return nil
	}
}

// Pid returns 0: the agent runs on another host.
func (ni *NetInstance) Pid() int { return 0 }

// OpenLink returns an error: an egress device cannot cross TCP; StreamTap
// carries its frames instead.
func (ni *NetInstance) OpenLink(string) (*os.File, error) {
	return nil, fmt.Errorf("sandbox %s on %s: an egress device cannot cross a network helper's connection (StreamTap carries its frames): %w", ni.id, ni.nc.addr, errors.ErrUnsupported)
}

// OOMKills asks the helper how many processes were killed for memory (0
// when it cannot tell).
func (ni *NetInstance) OOMKills() int {
	var a ipc.StatsAns
	if err := ni.agent.Do(context.Background(), ipc.MsgInstanceStats, nil, &a); err != nil {
		return 0
	}
	return int(a.OOMKills)
}

// SetTimeout asks the helper to stop the sandbox d from now.
func (ni *NetInstance) SetTimeout(d time.Duration) error {
	return ni.agent.Do(context.Background(), ipc.MsgInstanceSetTimeout, &ipc.TimeoutReq{Ns: int64(d)}, nil)
}

// Snapshot has the helper snapshot the sandbox into its own store, on
// top of the image the sandbox started from, and returns the snapshot's
// info; the helper also keeps it as an image (SnapshotImage), which
// MsgRemoteNew starts by digest. store, parent and log, which are this
// host's, are not used. It returns the helper's error.
func (ni *NetInstance) Snapshot(ctx context.Context, _ *image.Store, excludes []string, _ snapshot.Parent, _ *slog.Logger) (*snapshot.Info, error) {
	var a ipc.SnapshotAns
	if err := ni.agent.Do(ctx, ipc.MsgInstanceSnapshot, &ipc.SnapshotReq{Options: ipc.SnapshotOptions{Excludes: excludes}}, &a); err != nil {
		if ie, ok := errors.AsType[*ipc.IPCError](err); ok {
			err = ie.Bare()
		}
		return nil, fmt.Errorf("sandbox %s on %s: %w", ni.id, ni.nc.addr, err)
	}
	var info snapshot.Info
	if err := json.Unmarshal(a.Info, &info); err != nil {
		return nil, fmt.Errorf("sandbox %s on %s: the helper's snapshot: %w", ni.id, ni.nc.addr, err)
	}
	return &info, nil
}

// Close stops the sandbox (when the helper can still be reached) and
// closes its connections. It is safe to call more than once; later calls
// return the first call's result.
func (ni *NetInstance) Close() error {
	ni.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		err := ni.agent.Do(ctx, ipc.MsgInstanceClose, nil, nil)
		cancel()
		if err != nil && !errors.Is(err, ipc.ErrTransport) && !errors.Is(err, ipc.ErrAlreadyClosed) &&
			!errors.Is(err, ipc.ErrNotRunning) && !errors.Is(err, context.DeadlineExceeded) {
			if ie, ok := errors.AsType[*ipc.IPCError](err); ok {
				err = ie.Bare()
			}
			ni.closeErr = err
		}
		ni.waitStop()
		<-ni.done
		ni.agent.Close()
		ni.nc.forget(ni)
	})
	return ni.closeErr
}
