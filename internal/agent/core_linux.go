package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// agent is the state of one running agent.
type agent struct {
	cfg     *Config
	log     *slog.Logger
	mux     *ipc.Mux
	handles *handleTable
	reaper  *reaper
	root    *root // where the host's paths are resolved

	tun    int   // an O_PATH descriptor of /dev/net/tun, or -1
	tunErr error // why tun is -1

	// upper is the writable layer's directory when the host cannot reach
	// it (a VM's disk), for snapshots; nil otherwise.
	upper *os.File
	// frames is a gVisor sandbox's egress device (see frameLink); nil
	// elsewhere.
	frames *frameLink

	nullOnce sync.Once
	null     *os.File // see devNull
	nullErr  error
}

// newAgent returns the agent of the sandbox whose root is the calling
// process's root, or why the root cannot be opened.
func newAgent(cfg *Config, log *slog.Logger) (*agent, error) {
	r, err := openRoot()
	if err != nil {
		return nil, err
	}
	a := &agent{cfg: cfg, log: log, mux: ipc.NewMux(), handles: newHandleTable(), reaper: newReaper(), root: r,
		tun: -1, tunErr: errors.New("this sandbox cannot create network devices")}
	a.registerFS()
	a.registerFiles()
	a.registerCommands()
	a.registerNet()
	a.registerNetConfig()
	a.registerSnapshot()
	// An agent that answers is running: the cheapest call there is.
	a.handle(ipc.MsgInstanceIsRunning, func(*ipc.Request, *ipc.Decoder) (*ipc.Response, error) {
		return ok(func(e *ipc.Encoder) { e.Bool(true) }), nil
	})
	return a, nil
}

// handlerFunc is the shape of the agent's handlers: the request, and a
// decoder positioned at its payload.
type handlerFunc func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error)

// handle registers fn for msgType. Files that came with a request and that
// fn did not take (by setting req.Files to nil) are closed after it returns.
func (a *agent) handle(msgType uint16, fn handlerFunc) {
	a.mux.HandleCall(msgType, ipc.CallHandlerFunc(func(ctx context.Context, req *ipc.Request) (*ipc.Response, error) {
		defer func() {
			for _, f := range req.Files {
				f.Close()
			}
		}()
		return fn(req, req.Decoder())
	}))
}

// handleOn registers fn for msgType, whose payload starts with the handle
// of a T: get (lookup, or take to remove it) finds the object fn is given.
func handleOn[T any](a *agent, msgType uint16, get func(*handleTable, uint64) (T, error), fn func(req *ipc.Request, v T, dec *ipc.Decoder) (*ipc.Response, error)) {
	a.handle(msgType, func(req *ipc.Request, dec *ipc.Decoder) (*ipc.Response, error) {
		h, err := dec.Uint64()
		if err != nil {
			return nil, err
		}
		v, err := get(a.handles, h)
		if err != nil {
			return nil, err
		}
		return fn(req, v, dec)
	})
}

// ok returns a success answer built by fill (which may be nil).
func ok(fill func(*ipc.Encoder)) *ipc.Response {
	rb := ipc.NewResponseBuilder().Success()
	if fill != nil {
		fill(rb.Encoder())
	}
	return &ipc.Response{Payload: rb.Build()}
}

// sandboxPath turns a request's path into an absolute sandbox path.
func sandboxPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

// shutdown kills everything the agent started and stops its work.
func (a *agent) shutdown() {
	for _, v := range a.handles.all() {
		if c, ok := v.(interface{ release() }); ok {
			c.release()
		}
	}
	killAll()
	a.reaper.close()
}
