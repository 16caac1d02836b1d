package dockerfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// heredocDir is where a RUN heredoc that is a script (#!) is written for
// the command to run: a tmpfs of the sandbox, so no snapshot keeps it.
const heredocDir = "/dev/shm/.cc-build-heredoc"

// run runs a RUN instruction in a sandbox on the stage's filesystem.
func (s *state) run(c *instructions.RunCommand) error {
	network, err := runFlags(c, s.b.opts.Network)
	if err != nil {
		return err
	}
	args, script, err := s.runArgs(c)
	if err != nil {
		return err
	}
	if !isHost(s.platform) {
		return fmt.Errorf("RUN needs a sandbox of the stage's platform %s, and sandboxes here run %s only (no emulation)", platformString(s.platform), platformString(hostPlatform()))
	}
	mounts, err := s.runMounts(c)
	if err != nil {
		return err
	}
	stubs, err := s.mountStubs(mounts)
	if err != nil {
		return err
	}
	keyEnv := s.env()
	env := slices.Clone(keyEnv)
	for k, v := range s.b.opts.Args {
		declared := slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
		if predefinedArgs[k] && !declared {
			env = append(env, k+"="+v) // proxies: seen by RUN, not part of the key
		}
	}
	dir := s.cfg.Config.WorkingDir
	if dir == "" {
		dir = "/"
	}
	user := s.cfg.Config.User
	argsJSON, _ := json.Marshal(args)
	envJSON, _ := json.Marshal(keyEnv)
	k := newHasher("RUN").add(s.key, string(argsJSON), string(envJSON), dir, user)
	if script != nil {
		k.add(script.Path).addBytes(script.Data)
	}
	var flags []string
	if slices.Contains(c.FlagsUsed, "network") {
		k.add("network", instructions.GetNetwork(c))
		flags = append(flags, "--network="+instructions.GetNetwork(c))
	}
	for _, rm := range mounts {
		if err := rm.mountKey(k); err != nil {
			return err
		}
		flags = append(flags, rm.shown())
	}
	key := k.sum()
	shown := "RUN " + strings.Join(append(flags, c.CmdLine...), " ")
	createdBy := "RUN " + historyArgs(s.args) + strings.Join(args, " ") + " # buildkit"
	return s.fsStep(shown, key, createdBy, func() (Ref, error) {
		ms, err := s.prepareMounts(mounts, env)
		if err != nil {
			return nil, err
		}
		defer ms.close()
		out := &lineWriter{emit: func(line string) { s.event(shown, Event{Output: line}) }}
		var tail tailBuffer
		spec := RunSpec{
			Args: args, Env: append(slices.Clone(env), ms.env...), Dir: dir, User: user, Script: script,
			Output: multiLine{out, &tail}, Network: network, Binds: ms.binds, Stubs: stubs,
			After: s.fsKey, Key: key,
		}
		r, err := s.b.exec.Run(s.b.ctx, s.ref, spec)
		out.flush()
		if err != nil && s.b.ctx.Err() != nil {
			// Stopped because the build ended (the caller's context, or
			// another stage's failure): say so, wrapping the context's
			// error so the build reports the failure that caused it.
			return nil, fmt.Errorf("process %q stopped: %w", strings.Join(args, " "), s.b.ctx.Err())
		}
		if err != nil {
			msg := fmt.Sprintf("process %q did not complete successfully: %v", strings.Join(args, " "), err)
			switch {
			case network:
			case instructions.GetNetwork(c) == instructions.NetworkNone:
				msg += " (the step ran with --network=none: no network at all)"
			case s.b.opts.NoNetwork != "":
				msg += " (the step ran without network: " + s.b.opts.NoNetwork + ")"
			default:
				msg += " (the step ran without network: a build has none unless WithBuildNetwork gives it)"
			}
			if t := tail.String(); t != "" {
				msg += "\n" + t
			}
			return nil, fmt.Errorf("%s", msg)
		}
		return r, nil
	})
}

// runFlags checks the flags of a RUN and returns whether the step has
// the build's network.
func runFlags(c *instructions.RunCommand, buildNetwork bool) (bool, error) {
	for _, f := range c.FlagsUsed {
		switch f {
		case "mount":
		case "network":
			if instructions.GetNetwork(c) == instructions.NetworkHost {
				return false, errors.New("RUN --network=host is not supported: a build step never shares the host's network (WithBuildNetwork gives steps egress through the build's dialer)")
			}
		case "security":
			if instructions.GetSecurity(c) == instructions.SecurityInsecure {
				return false, errors.New("RUN --security=insecure is not supported: build steps always run as confined as any sandbox")
			}
		case "device":
			return false, errors.New("RUN --device is not supported: build steps get no host devices")
		default:
			return false, fmt.Errorf("RUN --%s is not supported by this builder", f)
		}
	}
	return buildNetwork && instructions.GetNetwork(c) != instructions.NetworkNone, nil
}

// runArgs returns the command line of a RUN, with the script file a
// heredoc needs, as BuildKit makes them.
func (s *state) runArgs(c *instructions.RunCommand) ([]string, *Script, error) {
	cmd := c.ShellDependantCmdLine
	args := cmd.CmdLine
	var script *Script
	if len(cmd.Files) > 0 {
		if len(args) != 1 || !cmd.PrependShell {
			return nil, nil, fmt.Errorf("a heredoc needs the shell form")
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			data := cmd.Files[0].Data
			if cmd.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				p := heredocDir + "/" + cmd.Files[0].Name
				script = &Script{Path: p, Data: []byte(data)}
				args = []string{p}
			} else {
				args = []string{data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range cmd.Files {
				b.WriteString("\n" + f.Data + f.Name)
			}
			args = []string{b.String()}
		}
	}
	cmd.CmdLine = args
	return s.withShell(cmd), script, nil
}

// historyArgs is the "|N k=v ..." prefix Docker's history gives a RUN
// that build arguments reach.
func historyArgs(args []argValue) string {
	var kv []string
	for _, a := range args {
		if a.value != nil {
			kv = append(kv, a.key+"="+*a.value)
		}
	}
	if len(kv) == 0 {
		return ""
	}
	return fmt.Sprintf("|%d %s ", len(kv), strings.Join(kv, " "))
}

// lineWriter splits what a command writes into lines.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

// maxOutputLine bounds a line of a step's output as it is reported: a
// longer one (output with no newline in it, however long) goes out in
// pieces of this size, and is never held whole.
const maxOutputLine = 16 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end = i
		}
		take := min(end, maxOutputLine-len(w.buf))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		switch {
		case i >= 0 && take == end: // the line ends here
			w.emit(strings.TrimSuffix(string(w.buf), "\r"))
			w.buf, p = w.buf[:0], p[1:]
		case len(w.buf) == maxOutputLine: // a long line: this piece goes now
			w.emit(string(w.buf))
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// tailBuffer keeps the last lines a failed command wrote, for its error.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailBytes = 2048

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*tailBytes {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}

// multiLine writes to both writers.
type multiLine struct {
	a *lineWriter
	b *tailBuffer
}

func (m multiLine) Write(p []byte) (int, error) {
	m.a.Write(p)
	return m.b.Write(p)
}
