package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// pkg is a package with tests.
type pkg struct {
	importPath string
	dir        string
	testFiles  int    // its _test.go files: how large its suite is, roughly
	bin        string // its test binary
}

// built is what the build step made.
type built struct {
	module    string               // the module's root directory
	modPath   string               // the module's path
	pkgs      map[string][]*pkg    // by phase name, in go list order
	examples  string               // directory of the example programs
	helper    string               // the cc-helper program
	cc        map[buildKind]string // the cc program, by kind of build
	test2json string               // go tool test2json
}

// The programs the tests run, built once: TestExamples runs the examples
// from CC_TEST_EXAMPLES_BIN and TestHelperBinary runs CC_TEST_HELPER_BIN,
// both built without -race, as a user builds them; cmd/cc's tests run
// CC_TEST_CC_BIN, built as the tests are (with -race when they are, as
// their TestMain would build it).
const (
	examplesPattern = "./examples/..."
	helperPackage   = "./cmd/cc-helper"
	ccPackage       = "./cmd/cc"
)

// build lists every phase's packages and builds their test binaries, each
// package once per kind of build (race, plain, static:TAGS), and the
// programs the tests run.
func build(ctx context.Context, work string, phases []*phase) (*built, error) {
	b := &built{pkgs: map[string][]*pkg{}}
	mod, err := output(ctx, "go", "list", "-m", "-f", "{{.Dir}}\t{{.Path}}")
	if err != nil {
		return nil, err
	}
	b.module, b.modPath, _ = strings.Cut(strings.TrimSpace(mod), "\t")
	type key struct {
		importPath string
		build      buildKind
	}
	all := map[key]*pkg{}
	order := map[buildKind][]*pkg{}
	var kinds []buildKind // in the phases' order
	for _, p := range phases {
		list, err := listPackages(ctx, p.patterns)
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", p.name, err)
		}
		for _, l := range list {
			k := key{l.importPath, p.build}
			if all[k] == nil {
				all[k] = l
				if order[p.build] == nil {
					kinds = append(kinds, p.build)
				}
				order[p.build] = append(order[p.build], l)
			}
			b.pkgs[p.name] = append(b.pkgs[p.name], all[k])
		}
	}
	for _, k := range kinds {
		if err := buildTests(ctx, filepath.Join(work, "bin", k.dir()), k, order[k]); err != nil {
			return nil, err
		}
	}
	b.examples = filepath.Join(work, "programs") + "/"
	// Static: examples/gvisor is runsc too, and runsc re-executes itself
	// in a root without the host's dynamic loader.
	say("CGO_ENABLED=0 go build -o %s %s %s", b.examples, examplesPattern, helperPackage)
	if err := command(ctx, "env", "CGO_ENABLED=0", "go", "build", "-o", b.examples, examplesPattern, helperPackage); err != nil {
		return nil, err
	}
	b.helper = filepath.Join(b.examples, "cc-helper")
	b.cc = map[buildKind]string{}
	for _, k := range kinds {
		if !hasPackage(order[k], b.modPath+strings.TrimPrefix(ccPackage, ".")) {
			continue // only cmd/cc's tests run it
		}
		b.cc[k] = filepath.Join(work, "programs-"+k.dir(), "cc")
		flags, env := k.goFlags()
		args := append(append([]string{"build"}, flags...), "-o", b.cc[k], ccPackage)
		say("%sgo %s", envPrefix(env), strings.Join(args, " "))
		if err := command(ctx, "env", append(append(env, "go"), args...)...); err != nil {
			return nil, err
		}
	}
	t2j, err := output(ctx, "go", "tool", "-n", "test2json")
	if err != nil {
		return nil, err
	}
	// The cached tool may be out of other users' reach: run a copy.
	b.test2json = filepath.Join(work, "test2json")
	data, err := os.ReadFile(strings.TrimSpace(t2j))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(b.test2json, data, 0o755); err != nil {
		return nil, err
	}
	return b, nil
}

// buildTests builds the test binaries of pkgs into dir. go test -c -o
// DIR/ names each binary after the last element of its import path:
// packages that share one go to separate directories.
func buildTests(ctx context.Context, dir string, k buildKind, pkgs []*pkg) error {
	flags, env := k.goFlags()
	var rounds [][]*pkg
	for _, p := range pkgs {
		name := path.Base(p.importPath)
		placed := false
		for i, r := range rounds {
			if !hasBase(r, name) {
				rounds[i] = append(r, p)
				placed = true
				break
			}
		}
		if !placed {
			rounds = append(rounds, []*pkg{p})
		}
	}
	for i, r := range rounds {
		out := filepath.Join(dir, strconv.Itoa(i)) + "/"
		args := append(append([]string{"test", "-c"}, flags...), "-o", out)
		for _, p := range r {
			args = append(args, p.importPath)
			p.bin = filepath.Join(out, path.Base(p.importPath)+".test")
		}
		say("%sgo %s ... (%s)", envPrefix(env), strings.Join(args[:len(args)-len(r)], " "), plural(len(r), "package"))
		if err := command(ctx, "env", append(append(env, "go"), args...)...); err != nil {
			return err
		}
	}
	return nil
}

// envPrefix shows a command's environment before it, as a shell would.
func envPrefix(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return strings.Join(env, " ") + " "
}

// hasPackage reports whether pkgs holds the package importPath.
func hasPackage(pkgs []*pkg, importPath string) bool {
	for _, p := range pkgs {
		if p.importPath == importPath {
			return true
		}
	}
	return false
}

func hasBase(r []*pkg, name string) bool {
	for _, p := range r {
		if path.Base(p.importPath) == name {
			return true
		}
	}
	return false
}

// listPackages returns the packages with tests that patterns match.
func listPackages(ctx context.Context, patterns []string) ([]*pkg, error) {
	args := append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{len .TestGoFiles}}\t{{len .XTestGoFiles}}"}, patterns...)
	s, err := output(ctx, "go", args...)
	if err != nil {
		return nil, err
	}
	var out []*pkg
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("go list: unexpected line %q", sc.Text())
		}
		in, _ := strconv.Atoi(f[2])
		x, _ := strconv.Atoi(f[3])
		if in+x == 0 {
			continue
		}
		out = append(out, &pkg{importPath: f[0], dir: f[1], testFiles: in + x})
	}
	return out, nil
}

// command runs a program with this process's output.
func command(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// output runs a program and returns its standard output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(b), nil
}

// shell runs a step's command with sh -c.
func shell(ctx context.Context, cmd string) error {
	return command(ctx, "sh", "-c", cmd)
}

// removeAll removes the work directory; a failure is said, not fatal.
func removeAll(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		say("testrun: removing %s: %v", dir, err)
	}
}
