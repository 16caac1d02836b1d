// Package dockerfilecases reads the Dockerfile conformance cases kept in
// the repository's testdata/dockerfile-cases (see their README): each
// case's Dockerfile, context and expected.txt, whose checks it parses into
// values a test can run, and the "busybox" base image they expect.
package dockerfilecases

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Case is one conformance case.
type Case struct {
	Name       string
	Dir        string
	Dockerfile []byte
	Text       string // expected.txt as it is
	Variants   []Variant
	Steps      []string // the lines under "steps:" or "cache steps:", for scripted cases
}

// Variant is one build of a case and what to check of it. A case
// without variants has one, with its top-level build-args, target and
// checks.
type Variant struct {
	Label   string
	Args    map[string]string
	Target  string
	Failure bool // the build must fail
	Checks  []Check
}

// Check is one line of checks.
type Check struct {
	Kind string // file, absent, isdir, mode, config, manifest, error, log, run-default-command
	Path string // the file path or JSON path ("" for error, log, run-default-command)
	Op   string // ==, !=, contains, not-contains, length, keys, has-prefix, owner-exec, ==bytes
	Arg  string // the operand as written (JSON, or a context file for ==bytes)
	Line string // the line, for messages
}

// Dir returns the cases directory: $CC_DOCKERFILE_CASES, or else
// testdata/dockerfile-cases under the repository's root, which is the
// directory the root package's tests run in. It is an error, naming the
// directory, when that is not a directory: the cases are part of the
// repository, and a test that cannot find them must fail, not pass.
func Dir() (string, error) {
	dir := os.Getenv("CC_DOCKERFILE_CASES")
	if dir == "" {
		dir = filepath.Join("testdata", "dockerfile-cases")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return dir, fmt.Errorf("the Dockerfile conformance cases: %w", err)
	}
	if !fi.IsDir() {
		return dir, fmt.Errorf("the Dockerfile conformance cases: %s is not a directory", dir)
	}
	return dir, nil
}

// Load reads every case in dir, in name order.
func Load(dir string) ([]*Case, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*Case
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		c, err := load(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("case %s: %w", e.Name(), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func load(dir string) (*Case, error) {
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	text, err := os.ReadFile(filepath.Join(dir, "expected.txt"))
	if err != nil {
		return nil, err
	}
	c := &Case{Name: filepath.Base(dir), Dir: dir, Dockerfile: df, Text: string(text)}
	return c, c.parse()
}

// parse reads expected.txt.
func (c *Case) parse() error {
	top := Variant{Label: "default"}
	section := ""
	var cur *Variant // the variant whose nested checks follow
	sc := bufio.NewScanner(strings.NewReader(c.Text))
	for sc.Scan() {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		indent := len(raw) - len(strings.TrimLeft(raw, " \t"))
		if line == "" {
			continue
		}
		if indent == 0 {
			key, val, _ := strings.Cut(line, ":")
			section = ""
			switch {
			case key == "expect":
				top.Failure = strings.HasPrefix(strings.TrimSpace(val), "failure")
			case key == "build-args":
				top.Args = parseArgs(strings.TrimSpace(stripComment(val)))
			case key == "target":
				top.Target = strings.Fields(val)[0]
			case strings.HasPrefix(key, "checks"):
				section = "checks"
			case key == "variants":
				section = "variants"
			case key == "steps" || key == "cache steps":
				section = "steps"
			}
			continue
		}
		switch section {
		case "checks":
			ch, ok, err := parseCheck(line)
			if err != nil {
				return err
			}
			if ok {
				top.Checks = append(top.Checks, ch)
			}
		case "steps":
			c.Steps = append(c.Steps, line)
		case "variants":
			if indent > 2 && cur != nil {
				ch, ok, err := parseCheck(line)
				if err != nil {
					return err
				}
				if ok {
					cur.Checks = append(cur.Checks, ch)
				}
				continue
			}
			v, err := parseVariant(line, top)
			if err != nil {
				return err
			}
			c.Variants = append(c.Variants, v)
			cur = &c.Variants[len(c.Variants)-1]
		}
	}
	if len(c.Variants) == 0 {
		c.Variants = []Variant{top}
	}
	return sc.Err()
}

// parseVariant reads "(no build-args)  ..." or "build-args: K=V  ...".
func parseVariant(line string, top Variant) (Variant, error) {
	v := Variant{Target: top.Target, Label: line}
	var rest string
	switch {
	case strings.HasPrefix(line, "(no build-args)"):
		rest = strings.TrimPrefix(line, "(no build-args)")
	case strings.HasPrefix(line, "build-args:"):
		s := strings.TrimPrefix(line, "build-args:")
		s = strings.TrimLeft(s, " ")
		args, after, _ := strings.Cut(s, "  ")
		v.Args = parseArgs(args)
		rest = after
	default:
		return v, fmt.Errorf("variant line %q", line)
	}
	for _, part := range splitOutsideQuotes(stripComment(rest), ';') {
		part = strings.TrimSpace(part)
		switch {
		case part == "" || part == "checks:":
		case strings.HasPrefix(part, "expect "):
			v.Failure = strings.HasPrefix(strings.TrimPrefix(part, "expect "), "failure")
		default:
			ch, ok, err := parseCheck(part)
			if err != nil {
				return v, err
			}
			if ok {
				v.Checks = append(v.Checks, ch)
			}
		}
	}
	return v, nil
}

// parseArgs reads "K=V K2=V2".
func parseArgs(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

// stripComment removes a "# ..." comment outside double quotes.
func stripComment(s string) string {
	inQ, esc := false, false
	for i, r := range s {
		switch {
		case esc:
			esc = false
		case r == '\\' && inQ:
			esc = true
		case r == '"':
			inQ = !inQ
		case r == '#' && !inQ && (i == 0 || s[i-1] == ' '):
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

func splitOutsideQuotes(s string, sep rune) []string {
	var out []string
	inQ, esc, start := false, false, 0
	for i, r := range s {
		switch {
		case esc:
			esc = false
		case r == '\\' && inQ:
			esc = true
		case r == '"':
			inQ = !inQ
		case r == sep && !inQ:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// ParseCheck reads one check line; ok is false for a line that is no
// check.
func ParseCheck(line string) (Check, bool, error) { return parseCheck(line) }

// parseCheck reads one check; ok is false for lines that are no check.
func parseCheck(line string) (Check, bool, error) {
	line = stripComment(line)
	f := strings.Fields(line)
	if len(f) == 0 {
		return Check{}, false, nil
	}
	ch := Check{Kind: f[0], Line: line}
	rest := func(n int) string { // the text after the first n fields
		s := line
		for i := 0; i < n; i++ {
			s = strings.TrimLeft(s, " ")
			s = s[strings.IndexByte(s+" ", ' '):]
		}
		return strings.TrimSpace(s)
	}
	switch ch.Kind {
	case "absent", "isdir":
		ch.Path = f[1]
		return ch, true, nil
	case "mode":
		ch.Path, ch.Op = f[1], "owner-exec"
		if !strings.Contains(line, "owner-execute") {
			return ch, false, fmt.Errorf("unknown mode check %q", line)
		}
		return ch, true, nil
	case "file", "config", "manifest":
		ch.Path = f[1]
		ch.Op = f[2]
		ch.Arg = rest(3)
		switch {
		case ch.Op == "has":
			ch.Op, ch.Arg = "has-prefix", strings.TrimPrefix(rest(3), "an entry starting ")
		case ch.Op == "keys":
			ch.Arg = strings.TrimSpace(strings.TrimPrefix(rest(3), "=="))
		case ch.Kind == "file" && ch.Op == "==" && strings.HasPrefix(ch.Arg, "<bytes of "):
			ch.Op, ch.Arg = "==bytes", strings.TrimSuffix(strings.TrimPrefix(ch.Arg, "<bytes of "), ">")
		}
		if !slices.Contains([]string{"==", "!=", "contains", "not-contains", "length", "keys", "has-prefix", "==bytes"}, ch.Op) {
			return ch, false, fmt.Errorf("unknown operator in %q", line)
		}
		return ch, true, nil
	case "error", "log":
		ch.Op, ch.Arg = f[1], rest(2)
		return ch, true, nil
	case "run-default-command":
		ch.Path, ch.Op, ch.Arg = f[1], f[2], rest(3)
		return ch, true, nil
	}
	return ch, false, nil
}

// ContextFile returns a file of the case's context.
func (c *Case) ContextFile(rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(c.Dir, filepath.FromSlash(rel)))
}

// HasFile reports whether the case has a file (Dockerfile.parent, ...).
func (c *Case) HasFile(name string) bool {
	_, err := os.Stat(filepath.Join(c.Dir, name))
	return err == nil
}
