package agent

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"golang.org/x/sys/unix"
)

// run is the agent's life in a namespace sandbox: set up, serve, exit.
func run() error {
	started := hv.Monotonic()
	sessionErr := newSession() // before anything else
	held := holdSignalsEarly()
	inheritErr := closeInherited(FdChannel, FdConfig, FdStatus)
	for _, fd := range []int{FdChannel, FdConfig, FdStatus, 2} {
		unix.CloseOnExec(fd) // never leak into commands (2 is the channel too)
	}
	os.Unsetenv(EnvMarker)
	status := os.NewFile(FdStatus, "status")
	defer status.Close()
	fail := func(err error) error {
		fmt.Fprintf(status, "%v\n", err)
		return err
	}
	if err := cmp.Or(sessionErr, inheritErr); err != nil {
		return fail(err)
	}

	cfg, err := receiveConfig(FdConfig)
	unix.Close(FdConfig)
	if err != nil {
		return fail(fmt.Errorf("reading the configuration: %w", err))
	}
	if cfg.Trace {
		cfg.phaseAt("agent init", started) // the runtime and package inits
		cfg.phase("config received")
	}
	tun, tunErr := openTunPath() // before the pivot hides the host's /dev
	err = setup(cfg)
	cfg.closeHostFds() // before anything in the sandbox runs
	if err != nil {
		return fail(err)
	}
	<-held // before the sandbox can run anything that signals the agent
	caps, err := confine(cfg)
	if err != nil {
		return fail(err)
	}
	cfg.phase("confine")
	a, err := newAgent(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fail(err)
	}
	a.reaper.caps = caps
	a.tun, a.tunErr = tun, tunErr
	ln, err := ipc.NewChannelListener(os.NewFile(FdChannel, "channel"))
	if err != nil {
		return fail(err)
	}
	srv := ipc.NewServerListener(ln, a.mux)
	srv.SetInfo(fmt.Sprintf("agent pid %d", os.Getpid()))
	srv.SetLogger(a.log)
	cfg.phase("agent serve")
	if _, err := status.WriteString(cfg.traceLine() + "ok\n"); err != nil {
		return err // the host is gone
	}
	status.Close()
	go a.warmUp() // while the host connects
	// Serve until the host's end of the channel is gone (the host closed
	// it or died): the host's connections come and go, none of them is
	// kept open only to say that the host is alive.
	err = srv.Serve()
	srv.Close()
	a.shutdown()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// closeHostFds closes every host descriptor the host sent.
func (c *Config) closeHostFds() {
	for _, fd := range c.received {
		unix.Close(fd)
	}
	c.received = nil
}

// confine applies the limits and the confinement every process of the
// sandbox inherits from the agent, and returns the capability cut to fork
// them under (nil when cfg.Unconfined).
func confine(cfg *Config) (*capCut, error) {
	if err := limitOpenFiles(cfg.NoFile); err != nil {
		return nil, err
	}
	if cfg.Unconfined {
		return nil, nil
	}
	return harden(false)
}

// limitOpenFiles limits the open files of the agent and of every process
// it starts to n, unless n is 0.
func limitOpenFiles(n uint64) error {
	if n == 0 {
		return nil
	}
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("limiting open files to %d: %w", n, err)
	}
	return nil
}
