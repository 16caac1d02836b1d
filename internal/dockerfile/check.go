package dockerfile

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Problem is an instruction, or a flag of one, that a build would refuse.
type Problem struct {
	Line        int    // 0 when the Dockerfile as a whole is at fault
	Instruction string // as written, "" when none
	Message     string
}

// String returns "Dockerfile:LINE: INSTRUCTION: message".
func (p Problem) String() string {
	return (&Error{Line: p.Line, Instruction: p.Instruction, Err: errors.New(p.Message)}).Error()
}

// Check parses dockerfile and plans a build of it with opts, without
// running anything, and returns every instruction or flag the build
// would refuse: what the parser rejects, flags and mounts this builder
// does not support (with why), secrets and agents a step requires that
// opts lack, URLs with the network off, RUN steps in a stage of a
// platform this host cannot run, and references to stages that are not
// defined before. Every stage is checked, needed by the target or not.
func Check(dockerfile []byte, opts Options) []Problem {
	p, err := parse(dockerfile, opts)
	if err != nil {
		return []Problem{problemOf(err)}
	}
	b := &builder{opts: p.opts, escape: p.escape, used: map[string]bool{}}
	if err := b.metaArgs(p.metaArgs); err != nil {
		return []Problem{problemOf(err)}
	}
	b.stages = p.stages(b)
	var out []Problem
	add := func(loc []parser.Range, instr string, err error) {
		out = append(out, Problem{Line: line(loc), Instruction: instr, Message: err.Error()})
	}
	if opts.Target != "" && b.stageByName(opts.Target) == nil {
		out = append(out, Problem{Message: fmt.Sprintf("target stage %q could not be found (stages: %s)", opts.Target, strings.Join(b.stageNames(), ", "))})
	}
	for _, s := range b.stages {
		platform, err := b.stagePlatform(s)
		if err != nil {
			add(s.def.Location, s.def.SourceCode, err)
		}
		if _, err := processWord(b.lex(), s.def.BaseName, envGetter(b.global, nil)); err != nil {
			add(s.def.Location, s.def.SourceCode, err)
		}
		wd := "" // the stage's working directory, "" while unknown
		if strings.EqualFold(s.def.BaseName, "scratch") {
			wd = "/"
		}
		for _, cmd := range s.def.Commands {
			if w, ok := cmd.(*instructions.WorkdirCommand); ok {
				wd = workdirAfter(wd, w.Path)
			}
			foreign := ""
			if err == nil && !isHost(platform) {
				foreign = platformString(platform)
			}
			for _, err := range b.checkCommand(s, cmd, foreign, wd) {
				add(cmd.Location(), instructionText(cmd), err)
			}
		}
	}
	return out
}

// workdirAfter returns the working directory after WORKDIR p, from wd
// ("" when not known: a base image's, or one with a variable).
func workdirAfter(wd, p string) string {
	switch {
	case strings.Contains(p, "$"):
		return ""
	case path.IsAbs(p):
		return path.Clean(p)
	case wd == "":
		return ""
	}
	return path.Join(wd, p)
}

// checkCommand returns what a build would refuse in cmd, an instruction
// of s; foreign is s's platform when it is not this host's, wd the
// working directory ("" when not known).
func (b *builder) checkCommand(s *stage, cmd instructions.Command, foreign, wd string) []error {
	var errs []error
	from := func(verb, name string) {
		if strings.Contains(name, "$") {
			errs = append(errs, errors.New("variable expansion is not supported for --from: define a stage with FROM using a global ARG instead"))
			return
		}
		if src := b.fromStage(name); src != nil && src.index >= s.index {
			errs = append(errs, fmt.Errorf("cannot %s from stage %q, it needs to be defined before current stage %q", verb, name, s.label))
		}
	}
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		if _, err := runFlags(c, b.opts.Network); err != nil {
			errs = append(errs, err)
		}
		if foreign != "" {
			errs = append(errs, fmt.Errorf("RUN needs a sandbox of the stage's platform %s, and sandboxes here run %s only (no emulation)", foreign, platformString(hostPlatform())))
		}
		if len(c.Files) > 0 && (len(c.CmdLine) != 1 || !c.PrependShell) {
			errs = append(errs, errors.New("a heredoc needs the shell form"))
		}
		if err := c.Expand(func(w string) (string, error) { return w, nil }); err != nil {
			errs = append(errs, err)
			break
		}
		nssh := 0
		if wd == "" {
			wd = "/the-working-directory" // not the root: relative targets pass
		}
		for _, m := range instructions.GetMounts(c) {
			if _, err := planMount(m, wd, nssh, &b.opts); err != nil {
				errs = append(errs, err)
			}
			if m.Type == instructions.MountTypeSSH {
				nssh++
			}
			if m.From != "" && (m.Type == instructions.MountTypeBind || m.Type == instructions.MountTypeCache) {
				from("mount", m.From)
			}
		}
	case *instructions.CopyCommand:
		for _, src := range c.SourcePaths {
			if isURL(src) || isGit(src) {
				errs = append(errs, fmt.Errorf("source %q: COPY cannot read URLs (ADD can)", src))
			}
		}
		if c.From != "" {
			from("copy", c.From)
		}
	case *instructions.AddCommand:
		hasURL := false
		for _, src := range c.SourcePaths {
			switch {
			case isGit(src):
				errs = append(errs, errGit)
			case isURL(src):
				hasURL = true
				checksum := c.Checksum
				if strings.Contains(checksum, "$") {
					checksum = "" // known once expanded, when the step runs
				}
				if _, err := newRemote(src, checksum); err != nil {
					errs = append(errs, err)
				}
				if !b.opts.Network {
					errs = append(errs, fmt.Errorf("ADD %s needs the network, and the build has none: WithBuildNetwork lets ADD fetch URLs", src))
				}
			}
		}
		if c.KeepGitDir != nil {
			errs = append(errs, errGit)
		}
		if c.Checksum != "" && !hasURL {
			errs = append(errs, errors.New("ADD --checksum needs an http(s) URL source"))
		}
	}
	return errs
}

// problemOf makes a Problem of a parse error, with its line.
func problemOf(err error) Problem {
	var de *Error
	if errors.As(err, &de) {
		p := Problem{Line: de.Line, Instruction: de.Instruction, Message: de.Err.Error()}
		var le *parser.LocationError
		if p.Line == 0 && errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			p.Line = le.Locations[0][0].Start.Line
		}
		return p
	}
	return Problem{Message: err.Error()}
}
