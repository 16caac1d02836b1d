package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// A phase is one line of the phases file: a set of packages whose test
// binaries run as one user with one environment.
type phase struct {
	name     string
	rootless bool      // run as the unprivileged user
	build    buildKind // how its test binaries are built
	env      []string  // KEY=value
	patterns []string  // package patterns
	flags    []string  // -test.* flags for each binary
	excepts  []except  // tests left out, each with its reason
	line     int       // in the phases file, for messages
}

// An except is a test (or subtests) the phase leaves out, from an
// "except PATTERN REASON..." line below the phase's: PATTERN is one
// alternative of go test's -skip (levels split by /), REASON says why
// (where it runs instead).
type except struct {
	pattern, reason string
	line            int
}

// args returns the flags for each of the phase's test binaries: its
// -test.* flags, with the excepts' patterns joined into -test.skip.
func (p *phase) args() []string {
	var skips []string
	var out []string
	for _, f := range p.flags {
		if v, ok := strings.CutPrefix(f, "-test.skip="); ok {
			skips = append(skips, splitTop(v, '|')...)
			continue
		}
		out = append(out, f)
	}
	for _, e := range p.excepts {
		skips = append(skips, splitTop(e.pattern, '|')...)
	}
	if len(skips) == 0 {
		return out
	}
	// go test tries the alternatives in order and stops at the first
	// that matches a test's name, even partly (an alternative of more
	// levels than the name has): a partial match does not skip, so one
	// like /(vm)$ placed first would keep ^TestX$ from skipping TestX.
	// Fewer levels first, then.
	slices.SortStableFunc(skips, func(a, b string) int { return len(splitTop(a, '/')) - len(splitTop(b, '/')) })
	return append(out, "-test.skip="+strings.Join(skips, "|"))
}

// splitTop splits a -run or -skip pattern at each sep outside brackets
// and parentheses, as go test does with | (alternatives) and / (levels).
func splitTop(s string, sep byte) []string {
	var out []string
	brackets, parens, start := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '[':
			brackets++
		case c == ']' && brackets > 0:
			brackets--
		case c == '(' && brackets == 0:
			parens++
		case c == ')' && brackets == 0:
			parens--
		case c == sep && brackets == 0 && parens == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// describe says what the phase runs, for its header.
func (p *phase) describe() string {
	who := "as this user"
	if p.rootless {
		who = "as an unprivileged user"
	}
	s := fmt.Sprintf("%s, %s, %s", strings.Join(p.patterns, " "), p.build.describe(), who)
	if len(p.env) > 0 {
		s += ", with " + strings.Join(p.env, " ")
	}
	if len(p.flags) > 0 {
		s += ", flags " + strings.Join(p.flags, " ")
	}
	if len(p.excepts) > 0 {
		s += ", leaving out " + plural(len(p.excepts), "pattern") + " (the summary lists them)"
	}
	return s
}

// parsePhases reads a phases file (see scripts/test-phases): one phase a
// line, "NAME USER BUILD ENV PACKAGES... [FLAGS...]", each followed by
// the tests it leaves out, "except PATTERN REASON...", with # comments.
func parsePhases(r io.Reader) ([]*phase, error) {
	var out []*phase
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "except" {
			if len(out) == 0 {
				return nil, fmt.Errorf("line %d: an except line before any phase", n)
			}
			if len(f) < 3 {
				return nil, fmt.Errorf("line %d: want except PATTERN REASON..., got %q (each test left out says why)", n, strings.TrimSpace(line))
			}
			// go test checks it too, but only when the phase runs.
			if _, err := regexp.Compile(strings.ReplaceAll(f[1], "/", "")); err != nil {
				return nil, fmt.Errorf("line %d: pattern %q: %v", n, f[1], err)
			}
			last := out[len(out)-1]
			last.excepts = append(last.excepts, except{pattern: f[1], reason: strings.Join(f[2:], " "), line: n})
			continue
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("line %d: want NAME USER BUILD ENV PACKAGES..., got %q", n, strings.TrimSpace(line))
		}
		p := &phase{name: f[0], line: n}
		if seen[p.name] {
			return nil, fmt.Errorf("line %d: a second phase named %q", n, p.name)
		}
		seen[p.name] = true
		switch f[1] {
		case "root":
		case "rootless":
			p.rootless = true
		default:
			return nil, fmt.Errorf("line %d: user %q: want root or rootless", n, f[1])
		}
		build, err := parseBuild(f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		p.build = build
		if f[3] != "-" {
			for _, kv := range strings.Split(f[3], ",") {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return nil, fmt.Errorf("line %d: environment %q: want VAR=value[,VAR=value...] or -", n, f[3])
				}
				p.env = append(p.env, kv)
			}
		}
		for _, w := range f[4:] {
			switch {
			case strings.HasPrefix(w, "-test."):
				p.flags = append(p.flags, w)
			case strings.HasPrefix(w, "-"):
				return nil, fmt.Errorf("line %d: flag %q: test binaries take -test.* flags (-test.run=..., not -run)", n, w)
			default:
				p.patterns = append(p.patterns, w)
			}
		}
		if len(p.patterns) == 0 {
			return nil, fmt.Errorf("line %d: phase %q names no packages", n, p.name)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no phases")
	}
	return out, nil
}

// A buildKind is how a phase's test binaries are built: "race" (-race),
// "plain" (neither -race nor tags), or "static:TAGS" (CGO_ENABLED=0,
// -tags TAGS, without -race: a static binary, as one that is runsc too
// must be). Phases of the same kind share their packages' binaries.
type buildKind string

// parseBuild checks a phase line's BUILD field.
func parseBuild(s string) (buildKind, error) {
	switch tags, static := strings.CutPrefix(s, "static:"); {
	case s == "race", s == "plain":
		return buildKind(s), nil
	case static && tags != "" && !strings.ContainsAny(tags, " \t\"'"):
		return buildKind(s), nil
	}
	return "", fmt.Errorf("build %q: want race, plain or static:TAGS (tags comma-separated)", s)
}

// race reports whether the kind builds with the race detector.
func (k buildKind) race() bool { return k == "race" }

// tags returns the build tags of a static kind, or "".
func (k buildKind) tags() string {
	t, _ := strings.CutPrefix(string(k), "static:")
	if t == string(k) {
		return ""
	}
	return t
}

// goFlags returns the go build flags of the kind, and the environment
// go needs for it (CGO_ENABLED=0 for a static kind).
func (k buildKind) goFlags() (flags, env []string) {
	switch {
	case k.race():
		return []string{"-race"}, nil
	case k.tags() != "":
		return []string{"-tags", k.tags()}, []string{"CGO_ENABLED=0"}
	}
	return nil, nil
}

// dir is the kind as a directory name.
func (k buildKind) dir() string { return strings.NewReplacer(":", "-", ",", "-").Replace(string(k)) }

// describe says how the kind builds, for a phase's header.
func (k buildKind) describe() string {
	switch {
	case k.race():
		return "-race"
	case k.tags() != "":
		return "static (CGO_ENABLED=0), -tags " + k.tags() + ", without -race"
	}
	return "without -race"
}

// selectPhases returns the phases named in only, in the file's order, or
// all of them when only is empty; a name the file lacks is an error.
func selectPhases(phases []*phase, only []string) ([]*phase, error) {
	if len(only) == 0 {
		return phases, nil
	}
	var out []*phase
	for _, name := range only {
		found := false
		for _, p := range phases {
			if p.name == name {
				found = true
			}
		}
		if !found {
			var names []string
			for _, p := range phases {
				names = append(names, p.name)
			}
			return nil, fmt.Errorf("-only %s: no such phase (there are %s)", name, strings.Join(names, ", "))
		}
	}
	for _, p := range phases {
		if slices.Contains(only, p.name) {
			out = append(out, p)
		}
	}
	return out, nil
}
