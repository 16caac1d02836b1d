package main

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestPhasesFile: the repository's phases file parses into the phases
// make test runs.
func TestPhasesFile(t *testing.T) {
	f, err := os.Open("../test-phases")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	phases, err := parsePhases(f)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*phase{}
	var names []string
	for _, p := range phases {
		names = append(names, p.name)
		byName[p.name] = p
	}
	if want := []string{"race", "race-vm", "build", "helper", "rootless", "gvisor", "gvisor-hv"}; !slices.Equal(names, want) {
		t.Fatalf("phases %q, want %q", names, want)
	}
	race, build, helper, rootless := byName["race"], byName["build"], byName["helper"], byName["rootless"]
	if !slices.Equal(helper.env, []string{"CC_USE_HELPER=1"}) || !rootless.rootless || race.rootless || build.rootless || !race.build.race() || build.build.race() {
		t.Errorf("helper env %q, rootless %v %v %v, build %q %q", helper.env, rootless.rootless, race.rootless, build.rootless, race.build, build.build)
	}
	// The gVisor runs: the test binary is runsc too, so static, with the
	// tag that links runsc in, and the public suite on the gVisor backend.
	for _, p := range []*phase{byName["gvisor"], byName["gvisor-hv"]} {
		if flags, env := p.build.goFlags(); !slices.Equal(flags, []string{"-tags", "gvisor"}) || !slices.Equal(env, []string{"CGO_ENABLED=0"}) {
			t.Errorf("phase %s builds with %q %q, want CGO_ENABLED=0 -tags gvisor", p.name, env, flags)
		}
	}
	if !slices.Contains(byName["gvisor"].env, "CC_BACKEND=gvisor") {
		t.Errorf("the gvisor phase's environment %q lacks CC_BACKEND=gvisor", byName["gvisor"].env)
	}
	// What a phase leaves out runs in full in another: the builder's
	// suites in the build phase, the VM's tests in the race-vm phase,
	// which the race phase leaves to it.
	full := map[string]string{"TestDockerfileCorpus": "build", "TestDockerfileConformance": "build", "TestBuildDockerfile": "build", "TestVMFiles": "race-vm"}
	if vm := byName["race-vm"]; !vm.build.race() || !slices.Contains(vm.flags, "-test.run=^TestVM") || !slices.ContainsFunc(race.excepts, func(e except) bool { return e.pattern == "^TestVM" }) {
		t.Errorf("race-vm (build %q, flags %q) is to run with -race the TestVM* tests the race phase leaves out", vm.build, vm.flags)
	}
	for _, p := range phases {
		for _, e := range p.excepts {
			test := strings.Trim(splitTop(e.pattern, '/')[0], "^$")
			if home, ok := full[test]; ok {
				if home == p.name || len(byName[home].excepts) > 0 && slices.ContainsFunc(byName[home].excepts, func(x except) bool { return strings.Contains(x.pattern, test) }) {
					t.Errorf("phase %s leaves out %s, and so does %s, which is to run it in full", p.name, test, home)
				}
			}
			if len(e.reason) < 20 {
				t.Errorf("phase %s leaves out %s with the reason %q: say where it runs", p.name, e.pattern, e.reason)
			}
		}
	}
}

// TestParsePhases: every field of a line, and a clear error, naming the
// line, for each kind of mistake.
func TestParsePhases(t *testing.T) {
	ps, err := parsePhases(strings.NewReader("# comment\n\ngvisor root race CC_BACKEND=gvisor,X=1 . ./cli -test.run=^TestVM # trailing\nst root static:gvisor,x - .\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	if p.name != "gvisor" || p.rootless || !p.build.race() || !slices.Equal(p.env, []string{"CC_BACKEND=gvisor", "X=1"}) ||
		!slices.Equal(p.patterns, []string{".", "./cli"}) || !slices.Equal(p.flags, []string{"-test.run=^TestVM"}) || p.line != 3 {
		t.Errorf("%+v", p)
	}
	if flags, env := ps[1].build.goFlags(); ps[1].build.race() || !slices.Equal(flags, []string{"-tags", "gvisor,x"}) ||
		!slices.Equal(env, []string{"CGO_ENABLED=0"}) || ps[1].build.dir() != "static-gvisor-x" {
		t.Errorf("static:gvisor,x builds with %q %q in %q", env, flags, ps[1].build.dir())
	}
	if flags, env := ps[0].build.goFlags(); !slices.Equal(flags, []string{"-race"}) || env != nil {
		t.Errorf("race builds with %q %q", env, flags)
	}
	for _, bad := range []struct{ text, want string }{
		{"race root race -\n", "line 1: want NAME USER BUILD ENV PACKAGES"},
		{"race admin race - .\n", `line 1: user "admin"`},
		{"race root fast - .\n", `line 1: build "fast": want race, plain or static:TAGS`},
		{"race root static: - .\n", `line 1: build "static:"`},
		{"race root race FOO .\n", `line 1: environment "FOO"`},
		{"race root race - . -run=X\n", `flag "-run=X"`},
		{"race root plain - -test.v\n", `phase "race" names no packages`},
		{"a root race - .\na root race - .\n", `line 2: a second phase named "a"`},
		{"# nothing\n", "no phases"},
		{"except TestX why\na root race - .\n", "line 1: an except line before any phase"},
		{"a root race - .\nexcept TestX\n", "line 2: want except PATTERN REASON"},
		{"a root race - .\nexcept TestX/(a reason\n", `line 2: pattern "TestX/(a"`},
	} {
		_, err := parsePhases(strings.NewReader(bad.text))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error containing %q", bad.text, err, bad.want)
		}
	}
}

// TestExcept: the except lines below a phase leave their tests out of
// it, each with its reason, joined with the phase's own -test.skip into
// the one -skip go test takes (alternatives split by |, levels by /).
func TestExcept(t *testing.T) {
	ps, err := parsePhases(strings.NewReader("a root race - . -test.run=^TestA -test.skip=/(vm|fd)$\n" +
		"  except ^TestCorpus$   the race phase builds the corpus\n" +
		"  except ^TestConf$/^(0[2-9]|1)   a selection: 01 and 10\n" +
		"b root race - .\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	if len(a.excepts) != 2 || a.excepts[0] != (except{"^TestCorpus$", "the race phase builds the corpus", 2}) ||
		a.excepts[1].reason != "a selection: 01 and 10" || len(b.excepts) != 0 {
		t.Errorf("excepts %+v, %+v", a.excepts, b.excepts)
	}
	// The one-level alternative first: go test stops at the first
	// alternative that matches even partly, and /(vm|fd)$ matches every
	// top-level name partly.
	want := []string{"-test.run=^TestA", "-test.skip=^TestCorpus$|/(vm|fd)$|^TestConf$/^(0[2-9]|1)"}
	if got := a.args(); !slices.Equal(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	if got := b.args(); len(got) != 0 {
		t.Errorf("a phase without flags or excepts passes %q", got)
	}
}

// TestSplitTop: | and / split a pattern only outside brackets and
// parentheses, and not when escaped.
func TestSplitTop(t *testing.T) {
	for _, c := range []struct {
		s    string
		sep  byte
		want []string
	}{
		{"a|b/(c|d)|[|]e", '|', []string{"a", "b/(c|d)", "[|]e"}},
		{"^A$/^(0[2-9]|1)/x\\/y", '/', []string{"^A$", "^(0[2-9]|1)", "x\\/y"}},
		{"", '|', []string{""}},
	} {
		if got := splitTop(c.s, c.sep); !slices.Equal(got, c.want) {
			t.Errorf("splitTop(%q, %q) = %q, want %q", c.s, c.sep, got, c.want)
		}
	}
}

// TestSelectPhases: -only keeps the named phases in the file's order, and
// names the phases there are when it names one that is not.
func TestSelectPhases(t *testing.T) {
	ps, err := parsePhases(strings.NewReader("a root race - .\nb root plain - .\nc root static:gvisor - .\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := selectPhases(ps, []string{"c", "a"})
	if err != nil || len(got) != 2 || got[0].name != "a" || got[1].name != "c" {
		t.Errorf("-only c -only a: %v %v", got, err)
	}
	if got, err := selectPhases(ps, nil); err != nil || len(got) != 3 {
		t.Errorf("no -only: %d phases, %v", len(got), err)
	}
	if _, err := selectPhases(ps, []string{"d"}); err == nil || !strings.Contains(err.Error(), "no such phase (there are a, b, c)") {
		t.Errorf("-only d: %v", err)
	}
}

// TestResult reads a real test2json stream (a rootless run of the public
// package, cut down): counts, skips with their reasons, failures with
// their output, the cases of a suite, and the package's failure.
func TestResult(t *testing.T) {
	f, err := os.Open("testdata/events.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := newResult([]string{"TestDockerfileConformance"})
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r.add(sc.Bytes())
	}
	if r.passed != 13 || r.skipped != 3 || r.failed != 2 {
		t.Errorf("passed %d, skipped %d, failed %d; want 13, 3, 2", r.passed, r.skipped, r.failed)
	}
	reasons := map[string]string{}
	for _, s := range r.skips {
		reasons[s.test] = s.reason
	}
	for test, want := range map[string]string{
		"TestEgressDialerPolicy":                  "egress_test.go:80: this host keeps /dev/net/tun from unprivileged users",
		"TestDockerfileConformance/11-copy-chown": "build_conformance_test.go:129: rootless: RUN stat must see the --chown owners",
	} {
		if !strings.HasPrefix(reasons[test], want) {
			t.Errorf("%s: reason %q, want it to start %q", test, reasons[test], want)
		}
	}
	if !slices.Equal(r.failures, []string{"TestPacketAndUnix/vm", "TestPacketAndUnix"}) {
		t.Errorf("failures %q", r.failures)
	}
	if !strings.Contains(strings.Join(r.failOutput, ""), "leaked mounts: 21 before, 22 after") {
		t.Errorf("the failure's output is missing:\n%s", strings.Join(r.failOutput, ""))
	}
	if s := r.suites["TestDockerfileConformance"]; s == nil || s.passed != 9 || s.skipped != 1 || s.failed != 0 {
		t.Errorf("suite: %+v, want 9 passed, 1 skipped", s)
	}
	if !r.pkgFailed {
		t.Error("the package's fail event was not seen")
	}
	if len(r.running) != 0 || len(r.output) != 0 {
		t.Errorf("left running: %v; output kept for %d tests", r.current(), len(r.output))
	}
}

// TestSkipReason: the reason is what Skip printed, without the runner's
// framing; a skip that says nothing says so.
func TestSkipReason(t *testing.T) {
	got := skipReason([]string{"=== RUN   TestX\n", "    x_test.go:9: no tun device\n", "--- SKIP: TestX (0.00s)\n"})
	if got != "x_test.go:9: no tun device" {
		t.Errorf("%q", got)
	}
	if got := skipReason([]string{"=== RUN   TestX\n", "--- SKIP: TestX (0.00s)\n"}); got != "(no reason given)" {
		t.Errorf("%q", got)
	}
}
