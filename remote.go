package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// The helper: when ipc.UseHelper() says so (CC_USE_HELPER=1, and by
// default on macOS and Windows), every instance lives in a helper process
// of its own, which starts the sandbox, owns it and stops it. The helper
// binary is found as ipc.FindHelper documents (CC_HELPER_PATH, next to this
// program, the per-user install directory, $PATH); when none is installed
// this program itself is re-executed as the helper, so a helper needs no
// installation. Where the backend allows it, the helper hands over the
// agent's channel and file, command and network calls go straight to the
// sandbox; otherwise the helper forwards them.

// remoteRunner is an instance that lives in a helper process.
type remoteRunner struct {
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

// forceProxy makes remote instances forward every call through the helper
// even where the agent's channel could be shared (tests use it to exercise
// the forwarding path).
var forceProxy = false

// startHelper starts a helper process and connects to it.
func startHelper(ctx context.Context) (*ipc.Client, error) {
	var cmd *exec.Cmd
	if path, err := ipc.FindHelper(""); err == nil {
		cmd = exec.Command(path)
	} else {
		exe, xerr := os.Executable()
		if xerr != nil {
			return nil, fmt.Errorf("no helper installed (%v) and no executable to re-run as one: %w", err, xerr)
		}
		cmd = exec.Command(exe)
		cmd.Env = append(os.Environ(), helper.EnvMarker+"=1")
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

// startRemote starts an instance in a new helper.
func startRemote(ctx context.Context, opts ipc.InstanceOptions, spec ipc.InstanceSpec) (*remoteRunner, error) {
	h, err := startHelper(ctx)
	if err != nil {
		return nil, err
	}
	spec.WantFD = h.CanPassDescriptors() && !forceProxy
	var e ipc.Encoder
	ipc.EncodeInstanceOptions(&e, opts)
	ipc.EncodeInstanceSpec(&e, spec)
	resp, err := h.Exchange(ctx, ipc.Message{Type: ipc.MsgInstanceNew, Payload: e.Bytes()})
	if err != nil {
		h.Close()
		return nil, err
	}
	dec := ipc.NewDecoder(resp.Payload[1:])
	r := &remoteRunner{helper: h, agent: h, done: make(chan struct{})}
	r.id, _ = dec.String()
	pid, _ := dec.Int32()
	r.pid = int(pid)
	r.passesFDs, _ = dec.Bool()
	hasChannel, err := dec.Bool()
	if err != nil || hasChannel != (len(resp.Files) == 1) {
		closeFiles(resp.Files)
		h.Close()
		return nil, errors.New("the helper's answer to MsgInstanceNew is malformed")
	}
	if hasChannel {
		d, err := ipc.NewChannelDialer(resp.Files[0])
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
func (r *remoteRunner) wait(ctx context.Context) {
	_, err := r.helper.CallContext(ctx, ipc.MsgInstanceWait, nil)
	switch {
	case err == nil, ctx.Err() != nil:
		r.reason = nil // closed
	case errors.Is(err, ipc.ErrTransport), errors.Is(err, ErrAlreadyClosed):
		r.reason = fmt.Errorf("sandbox %s: its helper process is gone: %w", r.id, ErrNotRunning)
	default:
		var ie *ipc.IPCError
		if errors.As(err, &ie) {
			err = ie.Bare()
		}
		r.reason = err
	}
	if r.direct {
		r.agent.Close() // its connections die with the sandbox anyway
	}
	close(r.done)
}

func (r *remoteRunner) ID() string            { return r.id }
func (r *remoteRunner) Client() *ipc.Client   { return r.agent }
func (r *remoteRunner) Done() <-chan struct{} { return r.done }
func (r *remoteRunner) Pid() int              { return r.pid }

func (r *remoteRunner) PassesFDs() bool { return r.passesFDs && r.agent.CanPassDescriptors() }

func (r *remoteRunner) Err() error {
	select {
	case <-r.done:
		return r.reason
	default:
		return nil
	}
}

// OpenLink asks the helper for the egress device.
func (r *remoteRunner) OpenLink(ifname string) (*os.File, error) {
	var e ipc.Encoder
	e.String(ifname)
	resp, err := r.helper.Exchange(context.Background(), ipc.Message{Type: ipc.MsgInstanceOpenLink, Payload: e.Bytes()})
	if err != nil {
		return nil, err
	}
	created, _ := ipc.NewDecoder(resp.Payload[1:]).Bool()
	if !created || len(resp.Files) != 1 {
		closeFiles(resp.Files)
		return nil, hv.ErrLinkViaAgent
	}
	return resp.Files[0], nil
}

// OOMKills asks the helper how many processes were killed for memory.
func (r *remoteRunner) OOMKills() int {
	resp, err := r.helper.Call(ipc.MsgInstanceStats, nil)
	if err != nil {
		return 0
	}
	n, _ := ipc.NewDecoder(resp[1:]).Uint32()
	return int(n)
}

// SetTimeout asks the helper to stop the sandbox d from now.
func (r *remoteRunner) SetTimeout(d time.Duration) error {
	var e ipc.Encoder
	e.Int64(int64(d))
	_, err := r.helper.Call(ipc.MsgInstanceSetTimeout, e.Bytes())
	return err
}

// Close stops the sandbox, then the helper.
func (r *remoteRunner) Close() error {
	r.closeOnce.Do(func() {
		_, err := r.helper.Call(ipc.MsgInstanceClose, nil)
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
