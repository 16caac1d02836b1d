package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parsed is a Dockerfile parsed for a build or a check.
type parsed struct {
	opts     Options // with the platform's default
	escape   rune    // the # escape= directive's, or a backslash
	defs     []instructions.Stage
	metaArgs []instructions.ArgCommand
	syntax   string // the # syntax= directive, if any
}

// parse parses a Dockerfile with BuildKit's parser, honouring its
// # escape= directive.
func parse(dockerfile []byte, opts Options) (*parsed, error) {
	if len(bytes.TrimSpace(dockerfile)) == 0 {
		return nil, errors.New("the Dockerfile is empty")
	}
	if opts.Platform.OS == "" {
		opts.Platform = hostPlatform()
	}
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, &Error{Err: locate(err)}
	}
	defs, metaArgs, err := instructions.Parse(res.AST, linter.New(&linter.Config{}))
	if err != nil {
		return nil, &Error{Err: err}
	}
	if len(defs) == 0 {
		return nil, &Error{Err: errors.New("no FROM instruction: nothing to build")}
	}
	syntax, _, _, _ := parser.DetectSyntax(dockerfile)
	return &parsed{opts: opts, escape: res.EscapeToken, defs: defs, metaArgs: metaArgs, syntax: syntax}, nil
}

// stages makes the stages of the Dockerfile, each with the stages it is
// known to need. b's meta arguments must be evaluated.
func (p *parsed) stages(b *builder) []*stage {
	var out []*stage
	for i, d := range p.defs {
		s := &stage{index: i, def: d, label: d.Name, done: make(chan struct{})}
		if s.label == "" {
			s.label = "stage-" + strconv.Itoa(i)
		}
		out = append(out, s)
	}
	b.stages = out
	for _, s := range out {
		s.deps = b.deps(s)
	}
	return out
}

// deps returns the earlier stages s names in its FROM, its COPY --from
// and its RUN --mount from= values.
func (b *builder) deps(s *stage) []*stage {
	var out []*stage
	add := func(d *stage) {
		if d != nil && d.index < s.index && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if name, err := processWord(b.lex(), s.def.BaseName, envGetter(b.global, nil)); err == nil {
		add(b.stageByName(name))
	}
	for _, cmd := range s.def.Commands {
		switch c := cmd.(type) {
		case *instructions.CopyCommand:
			if c.From != "" && !strings.Contains(c.From, "$") {
				add(b.fromStage(c.From))
			}
		case *instructions.RunCommand:
			for _, m := range peekMounts(c) {
				if m.From != "" && !strings.Contains(m.From, "$") {
					add(b.fromStage(m.From))
				}
			}
		}
	}
	return out
}

// peekMounts returns the mounts of a RUN with their words as written
// (nil when they do not parse: the step reports that when it runs).
func peekMounts(c *instructions.RunCommand) []*instructions.Mount {
	if err := c.Expand(func(w string) (string, error) { return w, nil }); err != nil {
		return nil
	}
	return instructions.GetMounts(c)
}

// hostPlatform is the platform this program's sandboxes run.
func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// platformString formats a platform as os/arch[/variant].
func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// parsePlatform parses os/arch[/variant], as FROM --platform takes it.
func parsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, err
	}
	if p.OS == "" || p.Architecture == "" || strings.Count(s, "/") < 1 {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p.OS, p.Architecture = strings.ToLower(p.OS), strings.ToLower(p.Architecture)
	if p.Architecture == "arm64" && p.Variant == "v8" || p.Architecture == "amd64" && p.Variant == "v1" {
		p.Variant = "" // the default variant, spelt out
	}
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}, nil
}

// isHost reports whether a stage of platform p can run here.
func isHost(p v1.Platform) bool {
	h := hostPlatform()
	return p.OS == h.OS && p.Architecture == h.Architecture && p.Variant == ""
}

// stagePlatform returns the platform a stage is built for: its FROM
// --platform (expanded with the meta arguments) or the build's.
func (b *builder) stagePlatform(s *stage) (v1.Platform, error) {
	if s.def.Platform == "" {
		return b.opts.Platform, nil
	}
	w, err := processWord(b.lex(), s.def.Platform, envGetter(b.global, nil))
	if err != nil {
		return v1.Platform{}, err
	}
	p, err := parsePlatform(w)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("FROM --platform=%s: %w", s.def.Platform, err)
	}
	return p, nil
}
