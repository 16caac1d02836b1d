package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

// mcpFlags are cc mcp's flags: the server's configuration.
type mcpFlags struct {
	image          string
	allowNetwork   bool
	memoryMB       uint64
	cpus           float64
	pids           int64
	timeout        time.Duration
	maxSandboxes   int
	maxCalls       int
	commandTimeout time.Duration
	maxOutput      int
	maxInput       int
}

func newMCPCmd(g *globals) *cobra.Command {
	var f mcpFlags
	c := &cobra.Command{
		Use:   "mcp [flags]",
		Short: "Serve sandboxes to an MCP client (an AI agent) on stdio",
		Long: "Mcp runs a Model Context Protocol server on standard input and output,\n" +
			"with tools to create sandboxes, run commands in them, write, read and list\n" +
			"their files, and close them. Every sandbox it made is closed when the\n" +
			"client disconnects. Sandboxes have no network unless --allow-network is\n" +
			"given and the client asks for it; without it, images a client names are not\n" +
			"pulled but must be in the store already. --memory, --cpus, --pids and --timeout\n" +
			"are each sandbox's defaults and the most a client may ask for.",
		Example: "  cc mcp --image host --memory 512 --timeout 30m --max-sandboxes 4",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMCP(cmd.Context(), g, &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.image, "image", "host", "the image of sandboxes the client names none for (as cc run's IMAGE)")
	fl.BoolVar(&f.allowNetwork, "allow-network", false, "let clients ask for sandboxes with outbound network access, and pull the images they name")
	fl.Uint64Var(&f.memoryMB, "memory", 0, "each sandbox's memory limit in MiB, and the most a client may ask for (0: none)")
	fl.Float64Var(&f.cpus, "cpus", 0, "each sandbox's CPU limit, and the most a client may ask for (0: none)")
	fl.Int64Var(&f.pids, "pids", 0, "each sandbox's process limit, and the most a client may ask for (0: none)")
	fl.DurationVar(&f.timeout, "timeout", 0, "each sandbox's lifetime, and the longest a client may ask for (0: until closed)")
	fl.IntVar(&f.maxSandboxes, "max-sandboxes", 4, "the most sandboxes open at once")
	fl.DurationVar(&f.commandTimeout, "command-timeout", 5*time.Minute, "the longest a command may run, and its default time limit")
	fl.IntVar(&f.maxOutput, "max-output", 1<<20, "the most bytes of each output stream, and of a file, a tool call returns")
	fl.IntVar(&f.maxCalls, "max-calls", 8, "the most tool calls in progress at once (more are refused, not queued)")
	fl.IntVar(&f.maxInput, "max-input", 4<<20, "the most bytes of a command's stdin, or of a file's content, a tool call may bring")
	return c
}

// check refuses values the server cannot work with.
func (f *mcpFlags) check() error {
	switch {
	case f.image == "":
		return errors.New("--image: empty")
	case f.cpus < 0:
		return fmt.Errorf("--cpus %v: negative", f.cpus)
	case f.pids < 0:
		return fmt.Errorf("--pids %d: negative", f.pids)
	case f.timeout < 0:
		return fmt.Errorf("--timeout %v: negative", f.timeout)
	case f.maxSandboxes < 1:
		return fmt.Errorf("--max-sandboxes %d: at least one", f.maxSandboxes)
	case f.commandTimeout <= 0:
		return fmt.Errorf("--command-timeout %v: must be positive", f.commandTimeout)
	case f.maxOutput < 2:
		return fmt.Errorf("--max-output %d: too small", f.maxOutput)
	case f.maxCalls < 1:
		return fmt.Errorf("--max-calls %d: at least one", f.maxCalls)
	case f.maxInput < 1:
		return fmt.Errorf("--max-input %d: at least one", f.maxInput)
	}
	return nil
}

// runMCP is cc mcp: it serves one client on stdio until it disconnects or
// a signal comes, then closes every sandbox the client made.
func runMCP(ctx context.Context, g *globals, f *mcpFlags) error {
	if err := f.check(); err != nil {
		return &exitError{code: exitOwn, msg: err.Error()}
	}
	// A client that stops reading makes a write fail (EPIPE), not kill the
	// server before it closes its sandboxes.
	signal.Ignore(syscall.SIGPIPE)
	set := newSandboxSet(f.maxSandboxes, f.maxCalls)
	// A signal ends the calls in progress (a command waiting out its
	// time limit) at once: the server's Run returns only after they have.
	stopCalls := context.AfterFunc(ctx, set.cancel)
	defer stopCalls()
	opts := &mcp.ServerOptions{
		Instructions: "Each sandbox is an isolated Linux environment made from an OCI image. " +
			"Create one with create_sandbox, run programs in it with run_command, move files with " +
			"write_file, read_file and list_files, and close it with close_sandbox when done. " +
			"Files written persist until the sandbox is closed.",
	}
	if g.debug {
		opts.Logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "cc", Title: "cc sandboxes", Version: version()}, opts)
	t := &tools{g: g, f: f, set: set}
	t.register(server)
	// A line holds one call: its arguments, JSON-escaped (at most six
	// bytes a byte), and the rest of the message.
	err := server.Run(ctx, &mcp.StdioTransport{MaxLineLength: 6*f.maxInput + 1<<20})
	if cerr := set.closeAll(); cerr != nil {
		fmt.Fprintln(g.stderr, "cc:", cerr)
	}
	if errors.Is(err, io.EOF) || (err != nil && ctx.Err() == nil && errors.Is(err, context.Canceled)) {
		err = nil // the client went away
	}
	return err
}

// version is the module's version, as go install recorded it.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
