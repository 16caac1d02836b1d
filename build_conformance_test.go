package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/dockerfilecases"
)

// TestDockerfileConformance runs the Dockerfile conformance cases (40
// cases from BuildKit's and Docker's own test suites, with their expected
// results) kept in testdata/dockerfile-cases. Set CC_DOCKERFILE_CASES to
// a cases directory to run them from elsewhere; without the directory the
// test fails: the cases are part of the repository.
//
// Each case's expected.txt is parsed (see internal/testutil/dockerfilecases)
// and its checks run against the built image: its files (read in a
// sandbox started from the result), its exported OCI config and manifest,
// the build's error and output, and the image's default command. The
// multi-build steps of the cache cases are scripted below, one function
// per case, following their expected.txt.
func TestDockerfileConformance(t *testing.T) {
	dir, err := dockerfilecases.Dir()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := dockerfilecases.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("no conformance cases in %s", dir)
	}
	bb := conformanceBusybox(t, dir)
	passed, skipped := 0, 0
	for _, c := range cases {
		var sub *testing.T
		if t.Run(c.Name, func(t *testing.T) { sub = t; runConformanceCase(t, c, bb) }) {
			if sub == nil { // left out by -run: t.Run did not call it
				continue
			}
			if sub.Skipped() {
				skipped++
			} else {
				passed++
			}
		}
	}
	t.Logf("Dockerfile conformance: %d of %d cases pass (%d skipped)", passed, len(cases), skipped)
}

// rootlessLimits are cases that need more than one user id inside the
// sandbox, which an unprivileged user's sandbox does not have.
var rootlessLimits = map[string]string{
	"11-copy-chown":     "RUN stat must see the --chown owners; a rootless sandbox shows every file as root's",
	"29-user-switching": "RUN as other users needs their ids; a rootless sandbox has root's only",
}

// conformanceBusybox loads the cases' "busybox" (the test busybox with
// their passwd and group) into the test store, as a fresh build base.
func conformanceBusybox(t *testing.T, dir string) *Image {
	img, err := dockerfilecases.Busybox(dir)
	if err != nil {
		t.Fatalf("the conformance busybox: %v", err)
	}
	return buildBase(t, img)
}

// confRun is one case being run: its context copy and the images its
// steps stored by name.
type confRun struct {
	t       *testing.T
	c       *dockerfilecases.Case
	bb      *Image
	ctxDir  string
	sources map[string]*Snapshot
}

// confResult is one build of a case.
type confResult struct {
	snap   *Snapshot
	err    error
	events []BuildProgress
}

func (r *confResult) log() string {
	var b strings.Builder
	for _, e := range r.events {
		b.WriteString(e.Instruction + "\n" + e.Output + "\n")
	}
	return b.String()
}

// cached reports, per stage, whether every step of that stage came from
// the cache.
func (r *confResult) cached() map[string]bool {
	m := map[string]bool{}
	for _, e := range r.events {
		if !e.Done {
			continue
		}
		if _, ok := m[e.Stage]; !ok {
			m[e.Stage] = true
		}
		m[e.Stage] = m[e.Stage] && e.Cached
	}
	return m
}

func runConformanceCase(t *testing.T, c *dockerfilecases.Case, bb *Image) {
	if why, ok := rootlessLimits[c.Name]; ok && os.Geteuid() != 0 {
		if c.Name == "29-user-switching" {
			// The same case must fail (no supplementary groups, no other
			// users), with the failing RUN named.
			r := (&confRun{t: t, c: c, bb: bb, ctxDir: copyContext(t, c)}).build(c.Dockerfile, c.Variants[0])
			if r.err == nil || !strings.Contains(r.err.Error(), "RUN ") {
				t.Errorf("rootless: want the build to fail at a RUN, got %v", r.err)
			}
		}
		t.Skipf("rootless: %s", why)
	}
	run := &confRun{t: t, c: c, bb: bb, ctxDir: copyContext(t, c), sources: map[string]*Snapshot{}}
	if script, ok := conformanceScripts[c.Name]; ok {
		script(run)
		return
	}
	if len(c.Steps) > 0 {
		run.parentSteps()
	}
	for _, v := range c.Variants {
		r := run.build(c.Dockerfile, v)
		run.check(r, v)
	}
}

// copyContext copies the case's context into a writable directory.
func copyContext(t *testing.T, c *dockerfilecases.Case) string {
	dst := t.TempDir()
	src := filepath.Join(c.Dir, "context")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == src {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, fi.Mode().Perm()|0o200)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// build runs one build of the case.
func (r *confRun) build(dockerfile []byte, v dockerfilecases.Variant, extra ...BuildOption) *confResult {
	r.t.Helper()
	res := &confResult{}
	var mu sync.Mutex
	opts := []BuildOption{
		WithCacheDir(testCache),
		WithContextDir(r.ctxDir),
		WithBuildSource("busybox", r.bb),
		WithPullOptions(WithPullPolicy(PullNever)),
		WithBuildProgress(func(p BuildProgress) { mu.Lock(); res.events = append(res.events, p); mu.Unlock() }),
	}
	for n, s := range r.sources {
		opts = append(opts, WithBuildSource(n, s))
	}
	for k, val := range v.Args {
		opts = append(opts, WithBuildArg(k, val))
	}
	if v.Target != "" {
		opts = append(opts, WithTarget(v.Target))
	}
	res.snap, res.err = Build(context.Background(), dockerfile, append(opts, extra...)...)
	if res.snap != nil {
		r.t.Cleanup(func() { res.snap.Close() })
	}
	return res
}

// mustBuild builds and fails the test on error.
func (r *confRun) mustBuild(v dockerfilecases.Variant, extra ...BuildOption) *confResult {
	r.t.Helper()
	res := r.build(r.c.Dockerfile, v, extra...)
	if res.err != nil {
		r.t.Fatalf("build: %v", res.err)
	}
	return res
}

var storeRE = regexp.MustCompile(`build (Dockerfile\.\w+).*store.*"([^"]+)"`)

// parentSteps builds the Dockerfile.parent (and .child) steps of a case
// and stores their results under the names its steps give, checking
// what the steps say of them.
func (r *confRun) parentSteps() {
	var last *confResult
	for _, line := range r.c.Steps {
		if m := storeRE.FindStringSubmatch(line); m != nil {
			df, err := os.ReadFile(filepath.Join(r.c.Dir, m[1]))
			if err != nil {
				r.t.Fatal(err)
			}
			last = r.build(df, dockerfilecases.Variant{})
			if last.err != nil {
				r.t.Fatalf("%s: %v", m[1], last.err)
			}
			r.sources[m[2]] = last.snap
			continue
		}
		if last == nil {
			continue
		}
		if i := strings.Index(line, "config "); i >= 0 {
			text := line[i:]
			if strings.HasSuffix(text, "is empty/null") {
				path := strings.Fields(text)[1]
				val := r.configValue(last, "config", path)
				if reflect.ValueOf(val).IsValid() && reflect.ValueOf(val).Len() > 0 {
					r.t.Errorf("%s: got %v", text, val)
				}
				continue
			}
			ch, ok := parseConfCheck(r.t, text)
			if ok {
				r.checkOne(last, ch)
			}
		}
	}
}

func parseConfCheck(t *testing.T, line string) (dockerfilecases.Check, bool) {
	ch, ok, err := dockerfilecases.ParseCheck(line)
	if err != nil {
		t.Fatalf("check %q: %v", line, err)
	}
	return ch, ok
}

// check runs a variant's checks on a build.
func (r *confRun) check(res *confResult, v dockerfilecases.Variant) {
	r.t.Helper()
	if v.Failure {
		if res.err == nil {
			r.t.Errorf("%s: the build succeeded; want it to fail", v.Label)
			return
		}
		r.t.Logf("%s: fails as it must: %v", v.Label, res.err)
	} else if res.err != nil {
		r.t.Errorf("%s: build: %v", v.Label, res.err)
		return
	}
	for _, ch := range v.Checks {
		r.checkOne(res, ch)
	}
}

// checkOne runs one check on a build.
func (r *confRun) checkOne(res *confResult, ch dockerfilecases.Check) {
	t := r.t
	t.Helper()
	switch ch.Kind {
	case "error":
		if res.err == nil || !strings.Contains(res.err.Error(), unquote(t, ch.Arg)) {
			t.Errorf("%s: error %v", ch.Line, res.err)
		}
		return
	case "log":
		if !strings.Contains(res.log(), unquote(t, ch.Arg)) {
			t.Errorf("%s: log:\n%s", ch.Line, res.log())
		}
		return
	}
	if res.snap == nil {
		t.Errorf("%s: no image", ch.Line)
		return
	}
	switch ch.Kind {
	case "file", "absent", "isdir", "mode":
		inst := newInstance(t, res.snap)
		switch ch.Kind {
		case "absent":
			if _, err := inst.Lstat(ch.Path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %v", ch.Line, err)
			}
		case "isdir":
			if fi, err := inst.Stat(ch.Path); err != nil || !fi.IsDir() {
				t.Errorf("%s: %v %v", ch.Line, fi, err)
			}
		case "mode":
			if fi, err := inst.Stat(ch.Path); err != nil || fi.Mode()&0o100 == 0 {
				t.Errorf("%s: %v %v", ch.Line, fi, err)
			}
		case "file":
			data, err := inst.ReadFile(ch.Path)
			if err != nil {
				t.Errorf("%s: %v", ch.Line, err)
				return
			}
			compareText(t, ch, string(data), r)
		}
	case "config", "manifest":
		checkJSON(t, ch, r.configValue(res, ch.Kind, ch.Path))
	case "run-default-command":
		inst := newInstance(t, res.snap)
		out, err := inst.EntrypointCommand().Output()
		if err != nil {
			t.Errorf("%s: %v\n%s", ch.Line, err, out)
			return
		}
		compareText(t, ch, string(out), r)
	default:
		t.Errorf("unknown check %q", ch.Line)
	}
}

// compareText checks a file's content or a command's output.
func compareText(t *testing.T, ch dockerfilecases.Check, got string, r *confRun) {
	t.Helper()
	var ok bool
	switch ch.Op {
	case "==":
		ok = got == unquote(t, ch.Arg)
	case "!=":
		ok = got != unquote(t, ch.Arg)
	case "contains":
		ok = strings.Contains(got, unquote(t, ch.Arg))
	case "not-contains":
		ok = !strings.Contains(got, unquote(t, ch.Arg))
	case "==bytes":
		want, err := r.c.ContextFile(ch.Arg)
		if err != nil {
			t.Fatal(err)
		}
		ok = got == string(want)
	default:
		t.Errorf("%s: unknown operator", ch.Line)
		return
	}
	if !ok {
		t.Errorf("%s: got %q", ch.Line, got)
	}
}

func unquote(t *testing.T, s string) string {
	t.Helper()
	var v string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("operand %s: %v", s, err)
	}
	return v
}

// configValue exports the image as an OCI layout and returns the value
// at path in its config ("config") or manifest ("manifest").
func (r *confRun) configValue(res *confResult, kind, path string) any {
	t := r.t
	t.Helper()
	dir := t.TempDir()
	if err := res.snap.WriteOCILayout(context.Background(), dir); err != nil {
		t.Fatalf("export: %v", err)
	}
	var index struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	var manifest map[string]any
	readJSON(t, blobPath(dir, index.Manifests[len(index.Manifests)-1].Digest), &manifest)
	doc := manifest
	if kind == "config" {
		doc = nil
		readJSON(t, blobPath(dir, manifest["config"].(map[string]any)["digest"].(string)), &doc)
	}
	return jsonPath(doc, path)
}

func blobPath(dir, digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return filepath.Join(dir, "blobs", alg, hex)
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// jsonPath evaluates ".a.b[0].c" on a decoded JSON document; nil when
// something on the way is missing.
func jsonPath(doc any, path string) any {
	cur := doc
	for _, part := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		name, idx, hasIdx := strings.Cut(part, "[")
		if name != "" {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[name]
		}
		if hasIdx {
			n, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			a, ok := cur.([]any)
			if !ok || n >= len(a) {
				return nil
			}
			cur = a[n]
		}
	}
	return cur
}

// checkJSON checks a config or manifest value.
func checkJSON(t *testing.T, ch dockerfilecases.Check, got any) {
	t.Helper()
	var want any
	parse := func() {
		if err := json.Unmarshal([]byte(ch.Arg), &want); err != nil {
			t.Fatalf("%s: operand: %v", ch.Line, err)
		}
	}
	ok := false
	switch ch.Op {
	case "==":
		parse()
		ok = reflect.DeepEqual(got, want)
	case "!=":
		parse()
		ok = got != nil && !reflect.DeepEqual(got, want)
	case "contains":
		parse()
		switch g := got.(type) {
		case []any:
			ok = slices.ContainsFunc(g, func(e any) bool { return reflect.DeepEqual(e, want) })
		case string:
			ok = strings.Contains(g, fmt.Sprint(want))
		}
	case "not-contains":
		parse()
		g, _ := got.([]any)
		ok = !slices.ContainsFunc(g, func(e any) bool { return reflect.DeepEqual(e, want) })
	case "length":
		n, _ := strconv.Atoi(strings.TrimSpace(ch.Arg))
		switch g := got.(type) {
		case []any:
			ok = len(g) == n
		case nil:
			ok = n == 0
		}
	case "keys":
		parse()
		m, _ := got.(map[string]any)
		var keys []any
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
		ok = reflect.DeepEqual(keys, want)
	case "has-prefix":
		parse()
		g, _ := got.([]any)
		ok = slices.ContainsFunc(g, func(e any) bool { s, _ := e.(string); return strings.HasPrefix(s, want.(string)) })
	}
	if !ok {
		t.Errorf("%s: got %v", ch.Line, got)
	}
}
