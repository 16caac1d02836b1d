// Command testrun runs the project's whole test suite, as `make test` does:
//
//  1. the steps given with -step (make test gives deps), in order;
//  2. build: every test binary the phases need, once per kind of build
//     (go test -c, with -race or without), and the programs the tests run
//     (the examples and cc-helper);
//  3. the phases of the phases file (scripts/test-phases), side by side,
//     each test binary run in its package's directory as go test runs it,
//     as this user or as an unprivileged one;
//     meanwhile the steps given with -beside (make test gives lint) run at
//     the lowest CPU priority, their output printed when each ends;
//  4. a summary: the time of each step and phase, the counts of tests,
//     every skipped test with its reason, the cases of the suites named
//     with -suite, the slowest tests, and what failed.
//
// Each step and phase prints a header when it starts and its time when it
// ends; while test binaries run, a line a minute says where each one is.
//
//	go run ./scripts/testrun [-jobs N] [-only PHASE]... [-step NAME=COMMAND]... [-suite TestName]... [phases-file]
//
// -only runs the named phases of the file and no others (and builds only
// what they need).
//
// It exits 1 when anything failed. The work directory (binaries, logs) is
// removed at the end unless something failed or -keep is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stepFlag collects -step NAME=COMMAND.
type stepFlag []namedCmd

type namedCmd struct{ name, cmd string }

func (s *stepFlag) String() string { return fmt.Sprint(*s) }
func (s *stepFlag) Set(v string) error {
	name, cmd, ok := strings.Cut(v, "=")
	if !ok || name == "" || cmd == "" {
		return fmt.Errorf("want NAME=COMMAND, got %q", v)
	}
	*s = append(*s, namedCmd{name, cmd})
	return nil
}

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// config is what the flags say.
type config struct {
	phasesFile string
	steps      stepFlag
	beside     stepFlag
	suites     listFlag
	only       listFlag
	jobs       int
	timeout    time.Duration
	user       string
	keep       bool
	heartbeat  time.Duration
}

func main() {
	var c config
	flag.Var(&c.steps, "step", "NAME=COMMAND: a step run with sh -c before the build (repeatable, in order)")
	flag.Var(&c.beside, "beside", "NAME=COMMAND: a step run with sh -c beside the test phases, at the lowest CPU priority (repeatable)")
	flag.Var(&c.suites, "suite", "a test whose subtests (cases) the summary counts per phase (repeatable)")
	flag.Var(&c.only, "only", "run only this phase of the phases file (repeatable)")
	flag.IntVar(&c.jobs, "jobs", 3, "test binaries running at once, across phases")
	flag.DurationVar(&c.timeout, "timeout", 40*time.Minute, "each test binary's -test.timeout")
	flag.StringVar(&c.user, "user", "ccsandbox-test", "the unprivileged user of rootless phases (when run as root)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (binaries and test2json logs)")
	flag.DurationVar(&c.heartbeat, "heartbeat", time.Minute, "how often to say where running test binaries are")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: testrun [flags] [phases-file (default scripts/test-phases)]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	c.phasesFile = "scripts/test-phases"
	switch flag.NArg() {
	case 0:
	case 1:
		c.phasesFile = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if c.jobs < 1 {
		fmt.Fprintln(os.Stderr, "testrun: -jobs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, &c))
}

// out serialises what the steps and jobs print.
var out struct {
	sync.Mutex
}

// say prints one line.
func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

// sayBlock prints lines without others in between.
func sayBlock(lines []string) {
	out.Lock()
	defer out.Unlock()
	for _, l := range lines {
		fmt.Print(l)
		if !strings.HasSuffix(l, "\n") {
			fmt.Println()
		}
	}
}

// dur formats a duration for people: 1m05s, 4.2s.
func dur(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// run does it all and returns the exit code.
func run(ctx context.Context, c *config) int {
	start := time.Now()
	f, err := os.Open(c.phasesFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testrun: %v\n", err)
		return 2
	}
	phases, err := parsePhases(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testrun: %s: %v\n", c.phasesFile, err)
		return 2
	}
	if phases, err = selectPhases(phases, c.only); err != nil {
		fmt.Fprintf(os.Stderr, "testrun: %s: %v\n", c.phasesFile, err)
		return 2
	}
	rep := &report{start: start, suites: c.suites}
	for _, s := range c.steps {
		ok := rep.step(s.name, s.cmd, func() error { return shell(ctx, s.cmd) })
		if !ok {
			return rep.print()
		}
	}
	// Short: TMPDIRs under it hold sockets and podman's runroot, which
	// have length limits.
	work, err := os.MkdirTemp("", "cctr")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testrun: %v\n", err)
		return 2
	}
	// Rootless phases read binaries and programs from here.
	if err := os.Chmod(work, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "testrun: %v\n", err)
		return 2
	}
	var b *built
	ok := rep.step("build", "test binaries (go test -c), examples and cc-helper", func() error {
		var err error
		b, err = build(ctx, work, phases)
		return err
	})
	if ok {
		wait := rep.beside(ctx, c.beside)
		runPhases(ctx, c, rep, b, work, phases)
		wait()
	}
	code := rep.print()
	if code != 0 || c.keep {
		say("the work directory (binaries, test2json logs) is kept: %s", work)
	} else {
		removeAll(work)
	}
	return code
}
