package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// A phase is one line of the phases file: a set of packages whose test
// binaries run as one user with one environment.
type phase struct {
	name     string
	rootless bool     // run as the unprivileged user
	race     bool     // test binaries built with -race
	env      []string // KEY=value
	patterns []string // package patterns
	flags    []string // -test.* flags for each binary
	line     int      // in the phases file, for messages
}

// describe says what the phase runs, for its header.
func (p *phase) describe() string {
	who := "as this user"
	if p.rootless {
		who = "as an unprivileged user"
	}
	build := "without -race"
	if p.race {
		build = "-race"
	}
	s := fmt.Sprintf("%s, %s, %s", strings.Join(p.patterns, " "), build, who)
	if len(p.env) > 0 {
		s += ", with " + strings.Join(p.env, " ")
	}
	if len(p.flags) > 0 {
		s += ", flags " + strings.Join(p.flags, " ")
	}
	return s
}

// parsePhases reads a phases file (see scripts/test-phases): one phase a
// line, "NAME USER BUILD ENV PACKAGES... [FLAGS...]", with # comments.
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
		switch f[2] {
		case "race":
			p.race = true
		case "plain":
		default:
			return nil, fmt.Errorf("line %d: build %q: want race or plain", n, f[2])
		}
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
