package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// builder is the state of one Build call.
type builder struct {
	ctx    context.Context // ends when the build fails
	cancel context.CancelCauseFunc
	exec   Executor
	opts   Options
	escape rune // of the Dockerfile's words
	stages []*stage
	ctxFS  srcFS
	global []argValue // the meta arguments (before the first FROM), with the platform's
	slots  *slots
	wg     sync.WaitGroup // one per stage goroutine

	mu     sync.Mutex
	used   map[string]bool         // build arguments some ARG declared; guarded by mu
	images map[string]*imageFuture // images resolved or being resolved, by name and platform; guarded by mu
	evMu   sync.Mutex              // serialises Progress calls
}

// imageFuture is an image being resolved once for every stage that
// names it.
type imageFuture struct {
	done chan struct{}
	ref  Ref
	err  error
}

// stage is one FROM section of the Dockerfile.
type stage struct {
	index int
	def   instructions.Stage
	label string   // the name, or "stage-N"
	deps  []*stage // the stages it needs, known before it runs

	start  sync.Once
	done   chan struct{} // closed once result or err is set
	result Ref
	err    error
}

// argValue is a build argument in scope; value is nil for one declared
// without a value.
type argValue struct {
	key   string
	value *string
}

// Build runs the Dockerfile dockerfile with exec and returns the target
// stage's result. Stages that do not need each other run at the same
// time, up to opts.Parallelism. Errors in the Dockerfile name its line.
func Build(ctx context.Context, dockerfile []byte, exec Executor, opts Options) (Ref, error) {
	p, err := parse(dockerfile, opts)
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b := &builder{
		ctx:    bctx,
		cancel: cancel,
		exec:   exec,
		opts:   p.opts,
		escape: p.escape,
		ctxFS:  noContext{},
		used:   map[string]bool{},
		images: map[string]*imageFuture{},
		slots:  newSlots(opts.Parallelism),
	}
	if opts.Context != "" {
		if b.ctxFS, err = openContext(opts.Context); err != nil {
			return nil, err
		}
	}
	if err := b.metaArgs(p.metaArgs); err != nil {
		return nil, err
	}
	b.stages = p.stages(b)
	if p.syntax != "" {
		b.event(Event{Output: fmt.Sprintf("# syntax=%s: accepted; the frontend it names is not fetched, this builder's own Dockerfile support runs the build", p.syntax)})
	}
	target := b.stages[len(b.stages)-1]
	if opts.Target != "" {
		target = b.stageByName(opts.Target)
		if target == nil {
			return nil, fmt.Errorf("target stage %q could not be found (stages: %s)", opts.Target, strings.Join(b.stageNames(), ", "))
		}
	}
	ref, err := b.await(target, nil)
	b.wg.Wait()
	if err != nil {
		return nil, b.buildErr(ctx, err)
	}
	b.warnUnused()
	return ref, nil
}

// openContext opens the build context and its .dockerignore.
func openContext(dir string) (*contextFS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", dir)
	}
	var rules *ignoreRules
	data, err := readDockerignore(abs)
	switch {
	case err == nil:
		if rules, err = parseDockerignore(data); err != nil {
			return nil, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("build context: %w", err)
	}
	return newContextFS(abs, rules), nil
}

// lex returns a lexer for the Dockerfile's words. Lexers keep state
// while they work, and stages run at once: each use gets its own.
func (b *builder) lex() *shell.Lex { return shell.NewLex(b.escape) }

// Error is an error of a Dockerfile, naming the line (when known) and
// the instruction (when one is at fault).
type Error struct {
	Line        int    // 0 when not known
	Instruction string // as written; "" when none
	Err         error
}

// Error returns "Dockerfile:LINE: INSTRUCTION: what went wrong".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("Dockerfile")
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Instruction != "" {
		b.WriteString(": " + e.Instruction)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// lineError blames an instruction for err, unless err blames one already
// (in a stage this one needs).
func lineError(line int, instr string, err error) error {
	var de *Error
	if errors.As(err, &de) {
		return err
	}
	return &Error{Line: line, Instruction: instr, Err: err}
}

// locate prefixes an error that carries a Dockerfile location with its
// line.
func locate(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		return fmt.Errorf("line %d: %w", le.Locations[0][0].Start.Line, err)
	}
	return err
}

func (b *builder) stageByName(name string) *stage {
	for _, s := range b.stages {
		if s.def.Name != "" && strings.EqualFold(s.def.Name, name) {
			return s
		}
	}
	return nil
}

func (b *builder) stageNames() []string {
	var out []string
	for _, s := range b.stages {
		if s.def.Name != "" {
			out = append(out, s.def.Name)
		}
	}
	return out
}

// event reports e to the Progress function, if any.
func (b *builder) event(e Event) {
	if b.opts.Progress == nil {
		return
	}
	b.evMu.Lock()
	defer b.evMu.Unlock()
	b.opts.Progress(e)
}

// warnUnused reports build arguments no ARG declared, as Docker does.
func (b *builder) warnUnused() {
	var unused []string
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.opts.Args {
		if !b.used[k] && !predefinedArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		b.event(Event{Output: fmt.Sprintf("[Warning] one or more build arguments were not consumed: %s", strings.Join(unused, ", "))})
	}
}

// buildStage runs the steps of s, whose dependencies are built.
func (b *builder) buildStage(s *stage) (Ref, error) {
	st, err := b.startStage(s)
	if err != nil {
		return nil, err
	}
	for _, cmd := range st.commands {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		err := st.dispatch(cmd)
		if err == nil {
			err = checkVariables(st.args, st.cfg.Config.Env, st.cfg.Config.Labels)
		}
		if err != nil {
			return nil, lineError(line(cmd.Location()), instructionText(cmd), err)
		}
	}
	return st.finish()
}

// line returns the first line of a location, 0 when unknown.
func line(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// instructionText returns an instruction as written, for errors.
func instructionText(cmd instructions.Command) string {
	if s, ok := cmd.(fmt.Stringer); ok {
		t := s.String()
		if i := strings.IndexByte(t, '\n'); i >= 0 {
			t = t[:i] + " ..."
		}
		return t
	}
	return strings.ToUpper(cmd.Name())
}

// resolveImage returns the image a name (not a stage) refers to, for a
// platform, resolving each once.
func (b *builder) resolveImage(name string, p v1.Platform) (Ref, error) {
	key := name + "\x00" + platformString(p)
	b.mu.Lock()
	f, ok := b.images[key]
	if !ok {
		f = &imageFuture{done: make(chan struct{})}
		b.images[key] = f
	}
	b.mu.Unlock()
	if !ok {
		f.ref, f.err = b.exec.Resolve(b.ctx, name, p)
		close(f.done)
	}
	select {
	case <-f.done:
		return f.ref, f.err
	case <-b.ctx.Done():
		return nil, b.ctx.Err()
	}
}

// stageRef resolves a COPY --from or RUN --mount from= value: a stage
// name or index (which must come before the current stage) or an image.
func (b *builder) stageRef(from string, cur *stage, p v1.Platform) (Ref, string, error) {
	if strings.Contains(from, "$") {
		return nil, "", errors.New("variable expansion is not supported for --from: define a stage with FROM using a global ARG instead")
	}
	if n, err := strconv.Atoi(from); err == nil && (n < 0 || n >= len(b.stages)) {
		return nil, "", fmt.Errorf("invalid stage index %d", n)
	}
	src := b.fromStage(from)
	if src == nil {
		r, err := b.resolveImage(from, p)
		return r, from, err
	}
	if src.index >= cur.index {
		return nil, "", fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", from, cur.label)
	}
	r, err := b.await(src, cur)
	return r, src.label, err
}

// fromStage returns the stage a --from value names by name or index, or
// nil.
func (b *builder) fromStage(from string) *stage {
	if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= len(b.stages) {
			return nil
		}
		return b.stages[n]
	}
	return b.stageByName(from)
}

// predefinedArgs are the build arguments Docker accepts without an ARG:
// the proxy settings, which RUN sees but cache keys leave out.
var predefinedArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// platformArgs are the automatic platform arguments of the global scope.
func platformArgs(p v1.Platform) []argValue {
	host := hostPlatform()
	kv := func(k, v string) argValue { return argValue{key: k, value: &v} }
	return []argValue{
		kv("BUILDPLATFORM", platformString(host)), kv("BUILDOS", host.OS), kv("BUILDARCH", host.Architecture), kv("BUILDVARIANT", ""),
		kv("TARGETPLATFORM", platformString(p)), kv("TARGETOS", p.OS), kv("TARGETARCH", p.Architecture), kv("TARGETVARIANT", p.Variant),
	}
}

// metaArgs evaluates the ARGs before the first FROM.
func (b *builder) metaArgs(cmds []instructions.ArgCommand) error {
	b.global = platformArgs(b.opts.Platform)
	for _, c := range cmds {
		for _, kv := range c.Args {
			b.used[kv.Key] = true
			var v *string
			if bv, ok := b.opts.Args[kv.Key]; ok {
				v = &bv
			} else if kv.Value != nil {
				w, err := processWord(b.lex(), *kv.Value, envGetter(b.global, nil))
				if err != nil {
					return &Error{Line: line(c.Location()), Instruction: c.String(), Err: err}
				}
				v = &w
			}
			b.global = setArg(b.global, kv.Key, v)
			if err := checkVariables(b.global, nil, nil); err != nil {
				return &Error{Line: line(c.Location()), Instruction: c.String(), Err: err}
			}
		}
	}
	return nil
}

// setArg sets (or adds) key in args.
func setArg(args []argValue, key string, v *string) []argValue {
	for i := range args {
		if args[i].key == key {
			args[i].value = v
			return args
		}
	}
	return append(args, argValue{key: key, value: v})
}

// globalArg returns a meta argument's value.
func (b *builder) globalArg(key string) (*string, bool) {
	for _, a := range b.global {
		if a.key == key {
			return a.value, a.value != nil
		}
	}
	return nil, false
}

// envGetter is the environment words expand in: build arguments with a
// value, then env (KEY=value), which wins over an argument of the same
// name.
func envGetter(args []argValue, env []string) shell.EnvGetter {
	return shell.EnvsFromSlice(mergeArgsEnv(args, env))
}

// mergeArgsEnv returns the environment of args and env, env winning.
func mergeArgsEnv(args []argValue, env []string) []string {
	out := make([]string, 0, len(args)+len(env))
	for _, a := range args {
		if a.value == nil || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, a.key+"=") || kv == a.key }) {
			continue
		}
		out = append(out, a.key+"="+*a.value)
	}
	return append(out, env...)
}
