package helper

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// EnvMarker, when set in the environment, makes the process a helper: the
// SDK re-executes its host binary this way when no cc-helper is installed.
const EnvMarker = "CC_SANDBOX_HELPER"

func init() {
	if os.Getenv(EnvMarker) == "" {
		return
	}
	os.Unsetenv(EnvMarker)
	os.Exit(Main(os.Args[1:]))
}

// Main runs a helper with the given command-line arguments and returns
// its exit code: with -socket PATH it serves one client over a Unix
// socket, the process that started it (its parent: connections from any
// other process are refused), then stops its sandbox; `serve ...` runs a
// network helper serving many clients over TCP with mutual TLS (see
// ParseServeFlags).
func Main(args []string) int {
	if len(args) > 0 && args[0] == "serve" {
		return serveMain(args[1:])
	}
	flags := flag.NewFlagSet("cc-helper", flag.ContinueOnError)
	socket := flags.String("socket", "", "the Unix socket to serve on")
	verbose := flags.Bool("v", false, "log to standard error")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "cc-helper: -socket is required")
		return 2
	}
	var out io.Writer = io.Discard
	if *verbose || os.Getenv("CC_HELPER_DEBUG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	parent := os.Getppid() // before anything can reparent this process
	h := newHandler(log)
	srv, err := ipc.Listen(*socket, h)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cc-helper:", err)
		return 1
	}
	srv.ServeOnly(parent)
	srv.SetInfo(fmt.Sprintf("cc-helper pid %d", os.Getpid()))
	srv.SetLogger(log)
	err = srv.ServeOne()
	h.shutdown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cc-helper:", err)
		return 1
	}
	return 0
}
