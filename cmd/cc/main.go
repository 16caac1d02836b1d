package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/ccsandbox/sandbox"
	"github.com/spf13/cobra"
)

// exitOwn is the exit code of cc's own failures, as docker's.
const exitOwn = 125

// exitError makes cc exit with code, printing msg on standard error when it
// is not empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// globals are the flags every command shares.
type globals struct {
	cacheDir string
	debug    bool
	stderr   io.Writer
	sig      *signals
}

// storeOptions returns the options that choose the layer store and the
// logger, for any call of the SDK.
func (g *globals) storeOptions() []sandbox.StoreOption {
	var opts []sandbox.StoreOption
	if g.cacheDir != "" {
		opts = append(opts, sandbox.WithCacheDir(g.cacheDir))
	}
	if g.debug {
		opts = append(opts, sandbox.WithLogger(slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	return opts
}

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs cc with args and returns its exit code.
func execute(args []string) int {
	sig := notifySignals()
	defer sig.stop()
	g := &globals{stderr: os.Stderr, sig: sig}
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(sig.ctx)
	var ee *exitError
	switch {
	case err == nil && sig.received() != 0:
		return 128 + int(sig.received()) // it ended the work, if only just
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "cc:", ee.msg)
		}
		return ee.code
	case sig.received() != 0:
		return 128 + int(sig.received())
	default:
		fmt.Fprintln(os.Stderr, "cc:", err)
		return exitOwn
	}
}

// newRootCmd returns the cc command with its subcommands.
func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "cc",
		Short: "Run isolated Linux sandboxes from OCI images",
		Long: "cc runs commands in sandboxes made from OCI images, builds images from\n" +
			"Dockerfiles, manages the layer store, and serves sandboxes to AI agents\n" +
			"over the Model Context Protocol (cc mcp).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.cacheDir, "cache-dir", "", "the layer store's directory (default: $CC_CACHE_DIR, or cc in the user's cache directory)")
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "log what the SDK does on standard error")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitOwn, msg: fmt.Sprintf("%v\nSee '%s --help'.", err, c.CommandPath())}
	})
	root.AddCommand(newRunCmd(g), newBuildCmd(g), newPullCmd(g), newImagesCmd(g), newRmiCmd(g), newPruneCmd(g), newDfCmd(g), newMCPCmd(g))
	return root
}

// usageArgs wraps a cobra.PositionalArgs so that its errors, like flag
// errors, point at --help.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return &exitError{code: exitOwn, msg: fmt.Sprintf("%q %v\nSee '%s --help'.\n\nUsage:  %s", c.CommandPath(), err, c.CommandPath(), c.UseLine())}
		}
		return nil
	}
}

// signals turns SIGINT, SIGTERM and SIGHUP into the end of a context, and
// remembers the first one.
type signals struct {
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan os.Signal
	first  atomic.Int32 // the first signal's number, set before ctx ends
	done   chan struct{}
}

func notifySignals() *signals {
	ctx, cancel := context.WithCancel(context.Background())
	s := &signals{ctx: ctx, cancel: cancel, ch: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(s.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case sg := <-s.ch:
			s.first.Store(int32(sg.(syscall.Signal)))
			cancel()
		case <-s.done:
		}
	}()
	return s
}

// received returns the first signal received, or 0.
func (s *signals) received() syscall.Signal { return syscall.Signal(s.first.Load()) }

func (s *signals) stop() {
	signal.Stop(s.ch)
	close(s.done)
	s.cancel()
}
