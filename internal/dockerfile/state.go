package dockerfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"golang.org/x/sys/unix"
)

// defaultPath is the PATH a base image without one gets, as Docker gives it.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// historyComment marks the history entries a build adds.
const historyComment = "github.com/ccsandbox/sandbox build"

// state is a stage being built: the ref of its last filesystem step, the
// config as the steps since have left it, and the step key so far.
type state struct {
	b        *builder
	st       *stage
	platform v1.Platform // the stage's (FROM --platform, or the build's)
	commands []instructions.Command
	ref      Ref
	cfg      *v1.ConfigFile
	dirty    bool // cfg differs from ref's config
	key      string
	fsKey    string     // the key of the last filesystem step, or of FROM before one
	args     []argValue // the stage's ARGs
	noCache  bool
	cmdSet   bool // a CMD came in this stage
	step     int
	total    int
	base     *layerFS // ref's files; nil until needed
}

// startStage resolves a stage's base, runs its step (FROM), and readies
// its commands, ONBUILD triggers of the base first.
func (b *builder) startStage(s *stage) (*state, error) {
	name, err := processWord(b.lex(), s.def.BaseName, envGetter(b.global, nil))
	if err != nil {
		return nil, &Error{Line: line(s.def.Location), Instruction: s.def.SourceCode, Err: err}
	}
	if name == "" {
		return nil, &Error{Line: line(s.def.Location), Instruction: s.def.SourceCode, Err: fmt.Errorf("base name (%s) should not be blank", s.def.BaseName)}
	}
	platform, err := b.stagePlatform(s)
	if err != nil {
		return nil, &Error{Line: line(s.def.Location), Instruction: s.def.SourceCode, Err: err}
	}
	st := &state{b: b, st: s, platform: platform, noCache: b.opts.noCacheFor(s.def.Name) || b.opts.noCacheFor(s.label)}
	var ref Ref
	switch src := b.stageByName(name); {
	case src != nil && src.index < s.index:
		ref, err = b.await(src, s)
	case strings.EqualFold(name, "scratch"):
		ref, err = b.exec.Scratch(b.ctx, scratchConfig(platform))
	default:
		ref, err = b.resolveImage(name, platform)
	}
	if err != nil {
		return nil, lineError(line(s.def.Location), s.def.SourceCode, err)
	}
	if err := st.setRef(ref); err != nil {
		return nil, err
	}
	st.key = newHasher("FROM").add(ref.Key(), platform.OS, platform.Architecture, platform.Variant).sum()
	if !slices.ContainsFunc(st.cfg.Config.Env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		st.cfg.Config.Env = append(st.cfg.Config.Env, "PATH="+defaultPath)
		st.dirty = true
	}
	if epoch := b.opts.SourceDateEpoch; !epoch.IsZero() {
		// Cached steps of builds without it have other times.
		st.key = stepKey(st.key, "SOURCE_DATE_EPOCH", fmt.Sprint(epoch.Unix()))
	}
	if triggers := st.cfg.Config.OnBuild; len(triggers) > 0 {
		st.cfg.Config.OnBuild = nil
		st.dirty = true
		for _, t := range triggers {
			cmd, err := parseTrigger(t, s.def.Location)
			if err != nil {
				return nil, &Error{Line: line(s.def.Location), Instruction: "ONBUILD " + t, Err: fmt.Errorf("trigger of %s: %w", name, err)}
			}
			st.commands = append(st.commands, cmd)
		}
		st.key = stepKey(st.key, "ONBUILD", triggers...)
	}
	st.fsKey = st.key
	st.commands = append(st.commands, s.def.Commands...)
	for _, c := range st.commands {
		switch c.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			st.total++
		}
	}
	if len(ref.Layers()) > 0 || !strings.EqualFold(name, "scratch") {
		st.total++
		st.step++
		b.event(Event{Step: st.step, Total: st.total, Stage: s.label, Instruction: "FROM " + name})
		b.event(Event{Step: st.step, Total: st.total, Stage: s.label, Instruction: "FROM " + name, Cached: true, Done: true})
	}
	return st, nil
}

// parseTrigger parses an ONBUILD trigger as an instruction at loc.
func parseTrigger(t string, loc []parser.Range) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(t))
	if err != nil {
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("a trigger must be one instruction")
	}
	n := res.AST.Children[0]
	if len(loc) > 0 {
		n.StartLine, n.EndLine = loc[0].Start.Line, loc[0].End.Line
	}
	return instructions.ParseCommand(n)
}

// scratchConfig is the config of a stage FROM scratch, as Docker makes it.
func scratchConfig(p v1.Platform) []byte {
	cfg := v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}},
		Config:       v1.Config{Env: []string{"PATH=" + defaultPath}, WorkingDir: "/"},
	}
	raw, _ := json.Marshal(cfg)
	return raw
}

// setRef makes ref the stage's filesystem and config.
func (s *state) setRef(ref Ref) error {
	var cfg v1.ConfigFile
	if err := json.Unmarshal(ref.Config(), &cfg); err != nil {
		return fmt.Errorf("the config of %s: %w", ref.Key(), err)
	}
	s.ref, s.cfg, s.dirty, s.base = ref, &cfg, false, nil
	return nil
}

// files returns the stage's root filesystem as it is now.
func (s *state) files() *layerFS {
	if s.base == nil {
		s.base = newLayerFS(s.ref.Layers(), s.b.exec.IDs())
	}
	return s.base
}

// env is the environment words expand in and RUN sees: the stage's
// ARGs, then its ENV, which wins.
func (s *state) env() []string {
	return mergeArgsEnv(s.args, s.cfg.Config.Env)
}

// expand expands a word of an instruction, Docker's way.
func (s *state) expand(word string) (string, error) {
	return processWord(s.b.lex(), word, envGetter(s.args, s.cfg.Config.Env))
}

// history records a step in the config.
func (s *state) history(createdBy string, emptyLayer bool) {
	now := v1.Time{Time: time.Now().UTC().Truncate(time.Second)}
	if epoch := s.b.opts.SourceDateEpoch; !epoch.IsZero() {
		now = v1.Time{Time: epoch.UTC()}
	}
	s.cfg.History = append(s.cfg.History, v1.History{Created: now, CreatedBy: createdBy, Comment: historyComment, EmptyLayer: emptyLayer})
	s.cfg.Created = now
	s.dirty = true
}

// meta ends a metadata step: the key takes the instruction as run.
func (s *state) meta(createdBy string) {
	s.history(createdBy, true)
	s.key = stepKey(s.key, "meta", createdBy)
}

// event reports a step event of this stage.
func (s *state) event(instr string, e Event) {
	e.Step, e.Total, e.Stage, e.Instruction = s.step, s.total, s.st.label, instr
	s.b.event(e)
}

// fsStep runs a filesystem step whose key is key: from the cache when it
// knows the key, else by run, whose result gets the config with the
// step's history entry.
func (s *state) fsStep(instr, key, createdBy string, run func() (Ref, error)) error {
	return s.fsStepReused(instr, key, createdBy, func() (Ref, bool, error) {
		r, err := run()
		return r, false, err
	})
}

// fsStepReused is fsStep for a step whose run may take its work from
// the cache (COPY --link): reused says so, and the step is reported as
// cached.
func (s *state) fsStepReused(instr, key, createdBy string, run func() (r Ref, reused bool, err error)) error {
	s.step++
	s.event(instr, Event{})
	if !s.noCache {
		r, ok, err := s.b.exec.Lookup(s.b.ctx, key)
		if err != nil {
			return err
		}
		if ok {
			if err := s.adopt(r); err != nil {
				return err
			}
			s.key, s.fsKey = key, key
			s.event(instr, Event{Cached: true, Done: true})
			return nil
		}
	}
	r, reused, err := run()
	if err != nil {
		return err
	}
	s.history(createdBy, len(r.Layers()) <= len(s.ref.Layers()))
	raw, err := json.Marshal(s.cfg)
	if err != nil {
		return err
	}
	r, err = s.b.exec.WithConfig(s.b.ctx, r, raw)
	if err != nil {
		return err
	}
	if err := s.b.exec.Record(s.b.ctx, key, r); err != nil {
		return err
	}
	if err := s.setRef(r); err != nil {
		return err
	}
	s.key, s.fsKey = key, key
	s.event(instr, Event{Cached: reused, Done: true})
	return nil
}

// adopt makes r, a cached result of the step being run, the stage's
// filesystem. Keys hold the build arguments a step uses, not all those in
// scope, so r's config may tell of other argument values in its history
// (ARG lines): r's config is taken when it is the one the build has come
// to (times aside), else the build's own goes on, with r's history entry
// for the step.
func (s *state) adopt(r Ref) error {
	var cached v1.ConfigFile
	if err := json.Unmarshal(r.Config(), &cached); err != nil {
		return fmt.Errorf("the config of %s: %w", r.Key(), err)
	}
	next := s.cfg.DeepCopy()
	if n := len(cached.History); n > 0 {
		next.History = append(next.History, cached.History[n-1])
	}
	next.Created = cached.Created
	if sameConfig(next, &cached) {
		return s.setRef(r)
	}
	s.ref, s.cfg, s.dirty, s.base = r, next, true, nil
	return nil
}

// sameConfig reports whether two configs are equal but for their times.
func sameConfig(a, b *v1.ConfigFile) bool {
	norm := func(c *v1.ConfigFile) []byte {
		c = c.DeepCopy()
		c.Created = v1.Time{}
		for i := range c.History {
			c.History[i].Created = v1.Time{}
		}
		raw, _ := json.Marshal(c)
		return raw
	}
	return bytes.Equal(norm(a), norm(b))
}

// finish returns the stage's result: its last ref, with the config the
// steps since have made, from the cache when it has it.
func (s *state) finish() (Ref, error) {
	if !s.dirty {
		return s.ref, nil
	}
	if !s.noCache {
		r, ok, err := s.b.exec.Lookup(s.b.ctx, s.key)
		if err != nil {
			return nil, err
		}
		if ok {
			var cached v1.ConfigFile
			if json.Unmarshal(r.Config(), &cached) == nil && sameConfig(s.cfg, &cached) {
				return r, nil
			}
		}
	}
	raw, err := json.Marshal(s.cfg)
	if err != nil {
		return nil, err
	}
	r, err := s.b.exec.WithConfig(s.b.ctx, s.ref, raw)
	if err != nil {
		return nil, err
	}
	return r, s.b.exec.Record(s.b.ctx, s.key, r)
}

// dispatch runs one instruction.
func (s *state) dispatch(cmd instructions.Command) error {
	if _, isArg := cmd.(*instructions.ArgCommand); !isArg {
		if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(s.expand); err != nil {
				return err
			}
		}
	}
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		var b strings.Builder
		b.WriteString("ENV")
		for _, kv := range c.Env {
			s.cfg.Config.Env = setEnv(s.cfg.Config.Env, kv.Key, kv.Value)
			b.WriteString(" " + kv.Key + "=" + kv.Value)
		}
		s.meta(b.String())
	case *instructions.LabelCommand:
		var b strings.Builder
		b.WriteString("LABEL")
		if s.cfg.Config.Labels == nil {
			s.cfg.Config.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			s.cfg.Config.Labels[kv.Key] = kv.Value
			b.WriteString(" " + kv.Key + "=" + kv.Value)
		}
		s.meta(b.String())
	case *instructions.MaintainerCommand:
		s.cfg.Author = c.Maintainer
		s.meta("MAINTAINER " + c.Maintainer)
	case *instructions.UserCommand:
		s.cfg.Config.User = c.User
		s.meta("USER " + c.User)
	case *instructions.VolumeCommand:
		if s.cfg.Config.Volumes == nil {
			s.cfg.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return fmt.Errorf("VOLUME specified can not be an empty string")
			}
			s.cfg.Config.Volumes[v] = struct{}{}
		}
		s.meta(fmt.Sprintf("VOLUME %v", c.Volumes))
	case *instructions.StopSignalCommand:
		if err := checkSignal(c.Signal); err != nil {
			return err
		}
		s.cfg.Config.StopSignal = c.Signal
		s.meta("STOPSIGNAL " + c.Signal)
	case *instructions.ShellCommand:
		s.cfg.Config.Shell = slices.Clone(c.Shell)
		s.meta(fmt.Sprintf("SHELL %v", c.Shell))
	case *instructions.CmdCommand:
		args := s.withShell(c.ShellDependantCmdLine)
		s.cfg.Config.Cmd = args
		s.cmdSet = true
		s.meta(fmt.Sprintf("CMD %q", args))
	case *instructions.EntrypointCommand:
		args := s.withShell(c.ShellDependantCmdLine)
		s.cfg.Config.Entrypoint = args
		if !s.cmdSet {
			s.cfg.Config.Cmd = nil // an inherited CMD belongs to the old entrypoint
		}
		s.meta(fmt.Sprintf("ENTRYPOINT %q", args))
	case *instructions.HealthCheckCommand:
		h := c.Health
		s.cfg.Config.Healthcheck = &v1.HealthConfig{Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
		s.meta(fmt.Sprintf("HEALTHCHECK %q", h.Test))
	case *instructions.ExposeCommand:
		return s.expose(c)
	case *instructions.OnbuildCommand:
		s.cfg.Config.OnBuild = append(s.cfg.Config.OnBuild, c.Expression)
		s.dirty = true
		s.key = stepKey(s.key, "ONBUILD", c.Expression)
	case *instructions.ArgCommand:
		return s.arg(c)
	case *instructions.WorkdirCommand:
		return s.workdir(c)
	case *instructions.RunCommand:
		return s.run(c)
	case *instructions.CopyCommand:
		return s.copy(copyArgs{sd: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns,
			parents: c.Parents, link: c.Link, text: c.String()})
	case *instructions.AddCommand:
		if c.KeepGitDir != nil {
			return errGit
		}
		return s.copy(copyArgs{add: true, unpack: c.Unpack == nil || *c.Unpack, unpackURL: c.Unpack != nil && *c.Unpack, sd: c.SourcesAndDest,
			chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns, link: c.Link, checksum: c.Checksum, text: c.String()})
	default:
		return fmt.Errorf("instruction %s is not supported", strings.ToUpper(cmd.Name()))
	}
	return nil
}

// withShell returns a CMD, ENTRYPOINT or RUN command line: the shell form
// runs in SHELL (default /bin/sh -c).
func (s *state) withShell(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return slices.Clone(c.CmdLine)
	}
	sh := slices.Clone(s.cfg.Config.Shell)
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(sh, strings.Join(c.CmdLine, " "))
}

// setEnv sets KEY=value in env, in place when the key is there.
func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if key, _, _ := strings.Cut(kv, "="); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// expose records EXPOSE's ports; a word may expand to several.
func (s *state) expose(c *instructions.ExposeCommand) error {
	if s.cfg.Config.ExposedPorts == nil {
		s.cfg.Config.ExposedPorts = map[string]struct{}{}
	}
	var ports []string
	for _, p := range c.Ports {
		words, err := processWords(s.b.lex(), p, envGetter(s.args, s.cfg.Config.Env))
		if err != nil {
			return err
		}
		for _, w := range words {
			port, proto, _ := strings.Cut(w, "/")
			if proto == "" {
				proto = "tcp"
			}
			proto = strings.ToLower(proto)
			if port == "" || strings.Trim(port, "0123456789-") != "" || proto != "tcp" && proto != "udp" && proto != "sctp" {
				return fmt.Errorf("invalid port %q", w)
			}
			ports = append(ports, port+"/"+proto)
			s.cfg.Config.ExposedPorts[port+"/"+proto] = struct{}{}
		}
	}
	s.meta("EXPOSE " + strings.Join(ports, " "))
	return nil
}

// arg declares build arguments in the stage.
func (s *state) arg(c *instructions.ArgCommand) error {
	var parts, names []string
	for _, kv := range c.Args {
		key, err := s.expand(kv.Key)
		if err != nil {
			return err
		}
		names = append(names, key)
		s.b.mu.Lock()
		s.b.used[key] = true
		s.b.mu.Unlock()
		var v *string
		if bv, ok := s.b.opts.Args[key]; ok {
			v = &bv
		} else if kv.Value != nil {
			w, err := s.expand(*kv.Value)
			if err != nil {
				return err
			}
			v = &w
		} else if gv, ok := s.b.globalArg(key); ok {
			v = gv
		}
		s.args = setArg(s.args, key, v)
		if v != nil {
			parts = append(parts, key+"="+*v)
		} else {
			parts = append(parts, key)
		}
	}
	// The key takes the names only: a value counts where it is used (in
	// a word it expands into, in the environment of a RUN).
	s.history("ARG "+strings.Join(parts, " "), true)
	s.key = stepKey(s.key, "ARG", names...)
	return nil
}

// workdir sets the working directory and creates it when the
// filesystem lacks it, owned by the stage's user.
func (s *state) workdir(c *instructions.WorkdirCommand) error {
	wd := c.Path
	if !path.IsAbs(wd) {
		cur := s.cfg.Config.WorkingDir
		if cur == "" {
			cur = "/"
		}
		wd = path.Join(cur, wd)
	}
	wd = path.Clean(wd)
	s.cfg.Config.WorkingDir = wd
	createdBy := "WORKDIR " + wd
	rel, err := resolve(s.files(), cleanRel(wd), true)
	if err != nil {
		return err
	}
	if e, err := s.files().lstat(rel); err == nil {
		if !e.mode.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: wd, Err: syscall.ENOTDIR}
		}
		s.step++ // there already: nothing to make
		s.event("WORKDIR "+c.Path, Event{})
		s.meta(createdBy)
		s.event("WORKDIR "+c.Path, Event{Cached: true, Done: true})
		return nil
	}
	o := owner{}
	if u := s.cfg.Config.User; u != "" {
		if o, err = resolveChown(u, s.files()); err != nil {
			o = owner{} // a user the image does not know: root, as a RUN would fail anyway
		}
	}
	key := stepKey(s.key, "WORKDIR", wd, fmt.Sprint(o.uid, ":", o.gid))
	return s.fsStep("WORKDIR "+c.Path, key, createdBy, func() (Ref, error) {
		return s.commit(func(w *layerWriter, _ string) error {
			return w.mkdirAll(rel, dirMeta{mode: fs.ModeDir | 0o755, uid: o.uid, gid: o.gid})
		})
	})
}

// commit prepares a layer with fill and commits it on the stage's ref.
func (s *state) commit(fill func(w *layerWriter, tmp string) error) (Ref, error) {
	return s.commitOn(s.ref, s.files(), fill)
}

// commitOn prepares a layer with fill, whose directories copy those of
// files, and commits it on base.
func (s *state) commitOn(base Ref, files *layerFS, fill func(w *layerWriter, tmp string) error) (Ref, error) {
	dir, remove, err := s.b.exec.TempDir(s.b.ctx)
	if err != nil {
		return nil, err
	}
	defer remove()
	layer := path.Join(dir, "layer")
	w, err := newLayerWriter(layer, s.b.exec.IDs(), files)
	if err != nil {
		return nil, err
	}
	defer w.close()
	w.epoch = s.b.opts.SourceDateEpoch
	if err := fill(w, dir); err != nil {
		return nil, err
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	return s.b.exec.Commit(s.b.ctx, base, layer)
}

// checkSignal accepts a signal name (SIGKILL, KILL) or number.
func checkSignal(sig string) error {
	if sig == "" {
		return fmt.Errorf("STOPSIGNAL: empty signal")
	}
	if strings.Trim(sig, "0123456789") == "" {
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if strings.HasPrefix(name, "RTMIN") || strings.HasPrefix(name, "RTMAX") {
		return nil
	}
	if unix.SignalNum("SIG"+name) == 0 {
		return fmt.Errorf("invalid signal: %s", sig)
	}
	return nil
}
