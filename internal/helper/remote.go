package helper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// The client's side of the helper: a Remote is an instance that lives in
// a helper process of its own, which starts the sandbox, owns it and stops
// it. The helper binary is found as ipc.FindHelper documents
// (CC_HELPER_PATH, next to this program, the per-user install directory,
// $PATH); when none is installed this program itself is re-executed as the
// helper (EnvMarker), so a helper needs no installation. Where the backend
// allows it, the helper hands over the agent's channel and file, command
// and network calls go straight to the sandbox; otherwise the helper
// forwards them.

// Options configures Start.
type Options struct {
	// Proxy makes every call go through the helper even where the
	// agent's channel could be shared (tests exercise the forwarding path
	// with it).
	Proxy bool
}

// Remote is an instance in a helper process.
type Remote struct {
	id        string
	pid       int
	helper    *ipc.Client // the helper: lifecycle calls
	agent     *ipc.Client // the agent's protocol: direct, or the helper itself
	direct    bool        // agent is a direct connection through the channel
	dialer    *ipc.ChannelDialer
	passesFDs bool

	done     chan struct{} // closed once the instance stopped
	reason   error         // why, set before done closes
	waitStop context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// startProcess starts a helper process and connects to it.
func startProcess(ctx context.Context) (*ipc.Client, error) {
	var cmd *exec.Cmd
	if path, err := ipc.FindHelper(""); err == nil {
		cmd = exec.Command(path)
	} else {
		exe, xerr := os.Executable()
		if xerr != nil {
			return nil, fmt.Errorf("no helper installed (%v) and no executable to re-run as one: %w", err, xerr)
		}
		cmd = exec.Command(exe)
		cmd.Env = append(os.Environ(), EnvMarker+"=1")
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if os.Getenv("GORACE") == "" {
		// A race-enabled helper would otherwise sleep a second at exit.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	if os.Getenv("CC_HELPER_DEBUG") != "" {
		cmd.Stderr = os.Stderr
	}
	c, err := ipc.StartHelper(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("starting the helper: %w", err)
	}
	return c, nil
}

// Start starts a helper and in it the instance spec describes. It returns
// the helper's or the engine's error when either fails to start.
func Start(ctx context.Context, spec engine.Spec, opts Options) (*Remote, error) {
	h, err := startProcess(ctx)
	if err != nil {
		return nil, err
	}
	var ans ipc.NewAns
	files, err := h.DoFiles(ctx, ipc.MsgInstanceNew, newRequest(spec, h.CanPassDescriptors() && !opts.Proxy), nil, &ans)
	if err != nil {
		h.Close()
		return nil, err
	}
	if ans.Channel != (len(files) == 1) {
		closeFiles(files)
		h.Close()
		return nil, fmt.Errorf("the helper's answer to MsgInstanceNew: channel %v with %d descriptors: %w", ans.Channel, len(files), ipc.ErrMalformed)
	}
	r := &Remote{id: ans.ID, pid: int(ans.Pid), passesFDs: ans.PassesFDs, helper: h, agent: h, done: make(chan struct{})}
	if ans.Channel {
		d, err := ipc.NewChannelDialer(files[0])
		if err == nil {
			var c *ipc.Client
			if c, err = ipc.Connect(ctx, d.Dial); err == nil {
				r.agent, r.direct, r.dialer = c, true, d
			} else {
				d.Close()
			}
		}
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("connecting to the sandbox through the helper's channel: %w", err)
		}
	}
	waitCtx, cancel := context.WithCancel(context.Background())
	r.waitStop = cancel
	go r.wait(waitCtx)
	return r, nil
}

// wait waits for the instance to stop, or the helper to go.
func (r *Remote) wait(ctx context.Context) {
	err := r.helper.Do(ctx, ipc.MsgInstanceWait, nil, nil)
	switch {
	case err == nil, ctx.Err() != nil:
		r.reason = nil // closed
	case errors.Is(err, ipc.ErrTransport), errors.Is(err, ipc.ErrAlreadyClosed):
		r.reason = fmt.Errorf("sandbox %s: its helper process is gone: %w", r.id, ipc.ErrNotRunning)
	default:
		if ie, ok := errors.AsType[*ipc.IPCError](err); ok {
			err = ie.Bare()
		}
		r.reason = err
	}
	if r.direct {
		r.agent.Close() // its connections die with the sandbox anyway
	}
	close(r.done)
}

// ID returns the instance's id.
func (r *Remote) ID() string { return r.id }

// Client returns the client of the instance's agent: a direct connection
// through the channel, or the helper, which forwards.
func (r *Remote) Client() *ipc.Client { return r.agent }

// Done returns a channel closed once the instance has stopped.
func (r *Remote) Done() <-chan struct{} { return r.done }

// Pid returns the host pid of the instance's agent.
func (r *Remote) Pid() int { return r.pid }

// PassesFDs reports whether answers from Client carry descriptors end to
// end.
func (r *Remote) PassesFDs() bool { return r.passesFDs && r.agent.CanPassDescriptors() }

// Err returns why the instance stopped: nil while it runs and after Close.
func (r *Remote) Err() error {
	select {
	case <-r.done:
		return r.reason
	default:
		return nil
	}
}

// OpenLink asks the helper for the egress device; it returns
// hv.ErrLinkViaAgent when the agent must create it.
func (r *Remote) OpenLink(ifname string) (*os.File, error) {
	var ans ipc.BoolAns
	files, err := r.helper.DoFiles(context.Background(), ipc.MsgInstanceOpenLink, &ipc.LinkReq{Ifname: ifname}, nil, &ans)
	if err != nil {
		return nil, err
	}
	if !ans.Value || len(files) != 1 {
		closeFiles(files)
		return nil, hv.ErrLinkViaAgent
	}
	return files[0], nil
}

// OOMKills asks the helper how many processes were killed for memory (0
// when it cannot tell).
func (r *Remote) OOMKills() int {
	var ans ipc.StatsAns
	if err := r.helper.Do(context.Background(), ipc.MsgInstanceStats, nil, &ans); err != nil {
		return 0
	}
	return int(ans.OOMKills)
}

// SetTimeout asks the helper to stop the sandbox d from now.
func (r *Remote) SetTimeout(d time.Duration) error {
	return r.helper.Do(context.Background(), ipc.MsgInstanceSetTimeout, &ipc.TimeoutReq{Ns: int64(d)}, nil)
}

// Snapshot asks the helper to capture the instance's changes into store
// (which the helper opens at the same directory), on top of parent. The
// helper logs on its own; log is not used.
func (r *Remote) Snapshot(ctx context.Context, store *image.Store, excludes []string, parent snapshot.Parent, _ *slog.Logger) (*snapshot.Info, error) {
	return r.snapshot(ctx, store.Root(), excludes, parent)
}

// snapshot asks for a snapshot into the store at cacheDir.
func (r *Remote) snapshot(ctx context.Context, cacheDir string, excludes []string, parent snapshot.Parent) (*snapshot.Info, error) {
	pj, err := json.Marshal(parent)
	if err != nil {
		return nil, err
	}
	req := &ipc.SnapshotReq{Options: ipc.SnapshotOptions{Excludes: excludes, CacheDir: cacheDir}, Parent: pj}
	var ans ipc.SnapshotAns
	if err := r.helper.Do(ctx, ipc.MsgInstanceSnapshot, req, &ans); err != nil {
		if ie, ok := errors.AsType[*ipc.IPCError](err); ok {
			return nil, ie.Bare()
		}
		return nil, err
	}
	var info snapshot.Info
	if err := json.Unmarshal(ans.Info, &info); err != nil {
		return nil, fmt.Errorf("the helper's snapshot answer: %w", err)
	}
	return &info, nil
}

// Close stops the sandbox, then the helper. It is safe to call more than
// once; later calls return the first call's result.
func (r *Remote) Close() error {
	r.closeOnce.Do(func() {
		err := r.helper.Do(context.Background(), ipc.MsgInstanceClose, nil, nil)
		if err != nil && !errors.Is(err, ipc.ErrTransport) {
			r.closeErr = err
		}
		r.waitStop()
		<-r.done
		if r.direct {
			r.agent.Close()
			r.dialer.Close()
		}
		r.helper.Close()
	})
	return r.closeErr
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Direct reports whether the agent's calls bypass the helper (the channel).
func (r *Remote) Direct() bool { return r.direct }

// Info returns the helper's description of itself from the handshake
// ("cc-helper pid N").
func (r *Remote) Info() string { return r.helper.Info() }
