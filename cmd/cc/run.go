package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// stopGrace is how long cc run waits, after a command ended other than by
// exiting, to learn whether its sandbox stopped.
const stopGrace = 2 * time.Second

// outputGrace is how long cc run copies output, after the command exits,
// that processes it left in the background hold open.
const outputGrace = 500 * time.Millisecond

// runFlags are cc run's flags.
type runFlags struct {
	network     bool
	volumes     []string
	env         []string
	workdir     string
	user        string
	memoryMB    uint64
	cpus        float64
	timeout     time.Duration
	tty         bool
	interactive bool
}

func newRunCmd(g *globals) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND [ARG...]]",
		Short: "Run a command in a new sandbox",
		Long: "Run starts a sandbox from IMAGE, runs COMMAND in it (or the image's\n" +
			"entrypoint and command), passes its output and exit code through, and\n" +
			"removes the sandbox. IMAGE is \"host\", an OCI layout directory or docker\n" +
			"archive (a path with a \"/\", or ending in .tar), an image digest or\n" +
			"snapshot key from the store, or a registry reference.",
		Example: "  cc run host sh -c 'echo hi; exit 3'\n" +
			"  echo data | cc run -i host cat\n" +
			"  cc run -it -v $PWD:/src -w /src --memory 512 docker.io/library/golang:1.26 bash",
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd.Context(), g, &f, args[0], args[1:])
		},
	}
	fl := c.Flags()
	fl.SetInterspersed(false) // flags after IMAGE are the command's
	fl.BoolVar(&f.network, "network", false, "give the sandbox outbound network access")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount a host path, HOST:DIR or HOST:DIR:ro (repeatable)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set K=V in the command's environment, or K to pass this one's (repeatable)")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "the directory the command starts in (absolute)")
	fl.StringVarP(&f.user, "user", "u", "", "the user to run as: a name, uid, or user:group")
	fl.Uint64Var(&f.memoryMB, "memory", 0, "limit the sandbox's memory to this many MiB")
	fl.Float64Var(&f.cpus, "cpus", 0, "limit the sandbox to this many CPUs (may be fractional)")
	fl.DurationVar(&f.timeout, "timeout", 0, "stop the sandbox after this long (30s, 5m)")
	fl.BoolVarP(&f.tty, "tty", "t", false, "run the command on a terminal that follows this one's size")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "pass standard input to the command")
	return c
}

// options turns the flags into options for sandbox.New.
func (f *runFlags) options(g *globals) ([]sandbox.Option, error) {
	var opts []sandbox.Option
	for _, o := range g.storeOptions() {
		opts = append(opts, o)
	}
	if f.network {
		opts = append(opts, sandbox.WithNetwork())
	}
	for _, v := range f.volumes {
		o, err := volumeOption(v)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	var env []string
	for _, kv := range f.env {
		if !strings.Contains(kv, "=") {
			v, ok := os.LookupEnv(kv)
			if !ok {
				continue // as docker does
			}
			kv += "=" + v
		}
		env = append(env, kv)
	}
	if len(env) > 0 {
		opts = append(opts, sandbox.WithEnv(env...))
	}
	if f.workdir != "" {
		opts = append(opts, sandbox.WithWorkDir(f.workdir))
	}
	if f.user != "" {
		opts = append(opts, sandbox.WithUser(f.user))
	}
	if f.memoryMB != 0 {
		opts = append(opts, sandbox.WithMemoryMB(f.memoryMB))
	}
	if f.cpus != 0 {
		opts = append(opts, sandbox.WithCPUs(f.cpus))
	}
	if f.timeout != 0 {
		opts = append(opts, sandbox.WithTimeout(f.timeout))
	}
	return opts, nil
}

// volumeOption parses -v HOST:DIR[:ro|:rw].
func volumeOption(v string) (sandbox.Option, error) {
	parts := strings.Split(v, ":")
	writable := true
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			writable = false
		case "rw":
		default:
			return nil, fmt.Errorf("-v %s: the mode must be ro or rw, not %q", v, parts[2])
		}
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("-v %s: want HOST:DIR or HOST:DIR:ro", v)
	}
	if _, err := os.Stat(parts[0]); err != nil {
		return nil, fmt.Errorf("-v %s: %w", v, err)
	}
	if writable {
		return sandbox.WithWritableMount(parts[0], parts[1]), nil
	}
	return sandbox.WithMount(parts[0], parts[1]), nil
}

// runRun is cc run.
func runRun(ctx context.Context, g *globals, f *runFlags, image string, args []string) error {
	opts, err := f.options(g)
	if err != nil {
		return &exitError{code: exitOwn, msg: err.Error()}
	}
	var progress io.Writer
	if isTerminal(os.Stderr) {
		progress = os.Stderr
	}
	src, release, err := openSource(ctx, g, image, sourceRules{paths: true, progress: progress})
	if err != nil {
		return err
	}
	defer release()
	inst, err := sandbox.New(ctx, src, opts...)
	if err != nil {
		return err
	}
	defer inst.Close()
	// A signal stops the sandbox, and so the command.
	running := make(chan struct{})
	defer close(running)
	go func() {
		select {
		case <-ctx.Done():
			inst.Close()
		case <-running:
		}
	}()

	c := inst.EntrypointCommand(args...)
	// As with docker run, the run ends with the command: output that
	// processes it left in the background still hold open is cut then.
	c.WaitDelay = outputGrace
	var follower *sizeFollower
	if f.tty {
		c.Tty = true
		c.Stdout = os.Stdout
		if f.interactive {
			c.Stdin = os.Stdin
		}
		if t := terminalOf(os.Stdout, os.Stdin); t != nil {
			follower = followSize(c, t)
			defer follower.stop()
		}
		if f.interactive && isTerminal(os.Stdin) {
			state, err := term.MakeRaw(int(os.Stdin.Fd()))
			if err != nil {
				return fmt.Errorf("putting the terminal in raw mode: %w", err)
			}
			defer term.Restore(int(os.Stdin.Fd()), state)
		}
	} else {
		c.Stdout = hideFile(os.Stdout)
		c.Stderr = hideFile(os.Stderr)
		if f.interactive {
			if err := passStdin(c); err != nil {
				return err
			}
		}
	}
	if err := c.Start(); err != nil {
		return startError(err)
	}
	if follower != nil {
		follower.start()
	}
	return exitOf(g, inst, f, c.Wait())
}

// passStdin gives the command our standard input, copied through a pipe
// of the SDK's (see hideFile: handed our own, the sandbox could reopen it
// through /proc/self/fd/0: a file writable, a pipe for writing, to put
// bytes before what the host's next reader of it gets) by a goroutine the
// exit does not wait for, since a terminal or a pipe may never end.
func passStdin(c *sandbox.Cmd) error {
	w, err := c.StdinPipe()
	if err != nil {
		return err
	}
	go func() {
		io.Copy(w, os.Stdin)
		w.Close()
	}()
	return nil
}

// startError gives the exit code of a command that could not start, as
// docker run's: 127 when it is not found, 126 when it cannot run.
func startError(err error) error {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return &exitError{code: 127, msg: err.Error()}
	case errors.Is(err, fs.ErrPermission):
		return &exitError{code: 126, msg: err.Error()}
	}
	return err
}

// exitOf turns the end of the command into cc's exit.
func exitOf(g *globals, inst *sandbox.Instance, f *runFlags, err error) error {
	if sig := g.sig.received(); sig != 0 {
		return &exitError{code: 128 + int(sig)}
	}
	var ee *sandbox.ExitError
	if f.timeout > 0 && err != nil && !(errors.As(err, &ee) && ee.Exited()) {
		// The process did not exit by itself: was the sandbox stopped? Its
		// end may reach us a moment after the command's.
		select {
		case <-inst.Done():
			if errors.Is(inst.Err(), sandbox.ErrTimeout) {
				return &exitError{code: exitOwn, msg: fmt.Sprintf("the sandbox's time limit (--timeout %v) ran out", f.timeout)}
			}
		case <-time.After(stopGrace):
		}
	}
	switch {
	case err == nil, errors.Is(err, sandbox.ErrWaitDelay):
		return nil // the command succeeded; see outputGrace
	case errors.As(err, &ee) && ee.Exited():
		return &exitError{code: ee.ExitCode()}
	case errors.As(err, &ee) && ee.Signaled():
		msg := ""
		if errors.Is(err, sandbox.ErrOutOfMemory) {
			msg = fmt.Sprintf("the command was killed: out of memory (--memory %d)", f.memoryMB)
		}
		return &exitError{code: 128 + int(ee.Signal()), msg: msg}
	}
	return err
}
