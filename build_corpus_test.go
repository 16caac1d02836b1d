package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corpusCase is one Dockerfile of testdata/dockerfiles, in the shape
// real projects write them, with case.txt saying how to build it here
// and what to check:
//
//	base NAME host|busybox   the image NAME stands for (no internet here)
//	arg K=V                  a build argument
//	secret ID "value"        a build secret (Go string syntax)
//	target STAGE             the stage to build
//	network egress|fetch     RUN steps need the network (egress) or only ADD does (fetch);
//	                         either way the build has it, and its steps too
//	needs PATH...            host files the build needs (the host image's toolchains)
//	build                    build it and check; else
//	check-only REASON        why it cannot build here (it must still pass CheckDockerfile)
//	output "text"            what the image's default command prints
//	file PATH = "text"       a file's content; or: file PATH contains "text"
//	absent PATH              a path the image must not have
//	user = "u"               the image's User
//	label KEY = "v"          an image label
type corpusCase struct {
	name, dir  string
	dockerfile []byte
	bases      map[string]string
	args       map[string]string
	secrets    map[string]string
	target     string
	network    string
	needs      []string
	build      bool
	reason     string
	checks     [][]string // each: kind, operands
}

func loadCorpus(t *testing.T) []*corpusCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", "dockerfiles", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*corpusCase
	for _, dir := range dirs {
		c := &corpusCase{name: filepath.Base(dir), dir: dir, bases: map[string]string{}, args: map[string]string{}, secrets: map[string]string{}}
		if c.dockerfile, err = os.ReadFile(filepath.Join(dir, "Dockerfile")); err != nil {
			t.Fatal(err)
		}
		spec, err := os.ReadFile(filepath.Join(dir, "case.txt"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(spec))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			word, rest, _ := strings.Cut(line, " ")
			switch word {
			case "base":
				name, kind, _ := strings.Cut(rest, " ")
				c.bases[name] = kind
			case "arg":
				k, v, _ := strings.Cut(rest, "=")
				c.args[k] = v
			case "secret":
				id, v, _ := strings.Cut(rest, " ")
				c.secrets[id] = corpusUnquote(t, c.name, v)
			case "target":
				c.target = rest
			case "network":
				c.network = rest
			case "needs":
				c.needs = append(c.needs, strings.Fields(rest)...)
			case "build":
				c.build = true
			case "check-only":
				c.reason = rest
			case "output", "file", "absent", "user", "label":
				c.checks = append(c.checks, []string{word, rest})
			default:
				t.Fatalf("%s: case.txt: unknown line %q", c.name, line)
			}
		}
		if c.build == (c.reason != "") {
			t.Fatalf("%s: case.txt must say either build or check-only with the reason", c.name)
		}
		out = append(out, c)
	}
	return out
}

func corpusUnquote(t *testing.T, name, s string) string {
	t.Helper()
	v, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("%s: case.txt: %s: %v", name, s, err)
	}
	return v
}

// options returns the build options of the case: its bases, arguments,
// secrets, target, and the network through m's dialer.
func (c *corpusCase) options(t *testing.T, m *mirror) []BuildOption {
	var opts []BuildOption
	for name, kind := range c.bases {
		switch kind {
		case "host":
			opts = append(opts, WithBuildSource(name, HostImage()))
		case "busybox":
			opts = append(opts, WithBuildSource(name, busyboxImage(t)))
		default:
			t.Fatalf("%s: base %s: unknown kind %q", c.name, name, kind)
		}
	}
	for k, v := range c.args {
		opts = append(opts, WithBuildArg(k, v))
	}
	for id, v := range c.secrets {
		opts = append(opts, WithBuildSecret(id, []byte(v)))
	}
	if c.target != "" {
		opts = append(opts, WithTarget(c.target))
	}
	if c.network != "" || c.reason != "" {
		opts = append(opts, WithBuildNetwork())
		if m != nil {
			opts = append(opts, WithBuildDialer(m.dial))
		}
	}
	return opts
}

// TestDockerfileCorpus checks every Dockerfile of the corpus with
// CheckDockerfile (none may have a problem), and builds those that can
// build here, over the busybox test image and the host image, checking
// what they made.
func TestDockerfileCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 30 {
		t.Errorf("the corpus has %d Dockerfiles, want at least 30", len(cases))
	}
	m := newMirror(t)
	built := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			problems, err := CheckDockerfile(c.dockerfile, c.options(t, m)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("CheckDockerfile: %s", p)
			}
			if !c.build {
				t.Logf("checked only: %s", c.reason)
				return
			}
			for _, p := range c.needs {
				if _, err := os.Stat(p); err != nil {
					t.Fatalf("the host image lacks %s, which this build needs (make deps installs Debian's toolchains; Go must be under /usr/local/go): %v", p, err)
				}
			}
			// A case without files of its own has no context directory
			// (git keeps no empty ones): its context is empty.
			ctxDir := t.TempDir()
			if _, err := os.Stat(filepath.Join(c.dir, "context")); err == nil {
				if err := os.CopyFS(ctxDir, os.DirFS(filepath.Join(c.dir, "context"))); err != nil {
					t.Fatal(err)
				}
			}
			b, err := buildDockerfile(t, string(c.dockerfile), ctxDir, c.options(t, m)...)
			if c.network != "" && !rootful() && bytes.Contains(c.dockerfile, []byte("\nRUN ")) {
				// The build's steps have the network: this user's sandboxes
				// cannot get a device here.
				if err == nil || !strings.Contains(err.Error(), "/dev/net/tun") {
					t.Fatalf("rootless, steps with the network: %v; want the error to name /dev/net/tun", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			built++
			for _, ch := range c.checks {
				c.check(t, b, ch[0], ch[1])
			}
		})
	}
	t.Logf("%d of %d Dockerfiles built here", built, len(cases))
}

// check runs one check line on a build of the case.
func (c *corpusCase) check(t *testing.T, b *dfBuild, kind, rest string) {
	t.Helper()
	switch kind {
	case "output":
		if b.inst == nil {
			b.inst = newInstance(t, b.snap)
		}
		cmd := b.inst.EntrypointCommand()
		if !rootful() {
			cmd.User = "0" // an unprivileged user's sandboxes have root's id only
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("the default command: %v\n%s", err, out)
		}
		eq(t, "the default command's output", string(out), corpusUnquote(t, c.name, rest))
	case "file":
		p, op, _ := strings.Cut(rest, " ")
		op, want, _ := strings.Cut(op, " ")
		got := b.file(p)
		switch op {
		case "=":
			eq(t, p, got, corpusUnquote(t, c.name, want))
		case "contains":
			if w := corpusUnquote(t, c.name, want); !strings.Contains(got, w) {
				t.Errorf("%s = %q, want %q in it", p, got, w)
			}
		default:
			t.Fatalf("file check %q", rest)
		}
	case "absent":
		if b.inst == nil {
			b.inst = newInstance(t, b.snap)
		}
		if _, err := b.inst.Lstat(strings.TrimPrefix(rest, "/")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s in the image: %v; want it absent", rest, err)
		}
	case "user":
		eq(t, "User", b.snap.Config().User, corpusUnquote(t, c.name, strings.TrimPrefix(rest, "= ")))
	case "label":
		key, want, _ := strings.Cut(rest, " = ")
		eq(t, "label "+key, b.snap.Config().Labels[key], corpusUnquote(t, c.name, want))
	}
}
