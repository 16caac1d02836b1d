package agent

import (
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
	a.register()
	return a, nil
}

// register routes every message of the agent's (ipc.PeerAgent) to its
// handler.
func (a *agent) register() {
	a.registerFS()
	a.registerFiles()
	a.registerCommands()
	a.registerNet()
	a.registerNetConfig()
	a.registerSnapshot()
	// An agent that answers is running: the cheapest call there is.
	ipc.Route(a.mux, ipc.MsgInstanceIsRunning, func(*ipc.Request, *ipc.Empty) (ipc.BoolAns, error) {
		return ipc.BoolAns{Value: true}, nil
	})
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
