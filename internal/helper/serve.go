package helper

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// serveMain runs `cc-helper serve` with args (after the word serve) and
// returns its exit code: 2 for bad flags, 1 when it cannot start or its
// listener fails, 0 after SIGTERM or SIGINT stopped it (and every sandbox
// it ran). Once it listens it prints "cc-helper: serving on ADDR" on
// standard output.
func serveMain(args []string) int {
	cfg, err := ParseServeFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var out io.Writer = io.Discard
	if cfg.Verbose || os.Getenv("CC_HELPER_DEBUG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewNetServer(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cc-helper serve:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve() }()
	fmt.Printf("cc-helper: serving on %s\n", s.Addr())
	select {
	case <-sigs:
		s.Close()
		return 0
	case err := <-serveErr:
		s.Close()
		fmt.Fprintln(os.Stderr, "cc-helper serve:", err)
		return 1
	}
}
