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
	var names []string
	for _, p := range phases {
		names = append(names, p.name)
	}
	if want := []string{"race", "helper", "rootless"}; !slices.Equal(names, want) {
		t.Fatalf("phases %q, want %q", names, want)
	}
	if !slices.Equal(phases[1].env, []string{"CC_USE_HELPER=1"}) || !phases[2].rootless || phases[0].rootless || !phases[0].race {
		t.Errorf("helper env %q, rootless %v %v, race %v", phases[1].env, phases[2].rootless, phases[0].rootless, phases[0].race)
	}
}

// TestParsePhases: every field of a line, and a clear error, naming the
// line, for each kind of mistake.
func TestParsePhases(t *testing.T) {
	ps, err := parsePhases(strings.NewReader("# comment\n\ngvisor root race CC_BACKEND=gvisor,X=1 . ./cli -test.run=^TestVM # trailing\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	if p.name != "gvisor" || p.rootless || !p.race || !slices.Equal(p.env, []string{"CC_BACKEND=gvisor", "X=1"}) ||
		!slices.Equal(p.patterns, []string{".", "./cli"}) || !slices.Equal(p.flags, []string{"-test.run=^TestVM"}) || p.line != 3 {
		t.Errorf("%+v", p)
	}
	for _, bad := range []struct{ text, want string }{
		{"race root race -\n", "line 1: want NAME USER BUILD ENV PACKAGES"},
		{"race admin race - .\n", `line 1: user "admin"`},
		{"race root fast - .\n", `line 1: build "fast"`},
		{"race root race FOO .\n", `line 1: environment "FOO"`},
		{"race root race - . -run=X\n", `flag "-run=X"`},
		{"race root plain - -test.v\n", `phase "race" names no packages`},
		{"a root race - .\na root race - .\n", `line 2: a second phase named "a"`},
		{"# nothing\n", "no phases"},
	} {
		_, err := parsePhases(strings.NewReader(bad.text))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error containing %q", bad.text, err, bad.want)
		}
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
