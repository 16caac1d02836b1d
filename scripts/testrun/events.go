package main

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// event is one line of test2json's output (see go doc test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// skip is a skipped test and the reason it gave.
type skip struct {
	test, reason string
}

// result is what one test binary's events say: counts of tests and
// subtests by outcome, the skipped tests with their reasons, the output of
// the failed ones, and the subtests of the suites asked for.
type result struct {
	passed, skipped, failed int
	skips                   []skip
	failures                []string // failed tests' names
	failOutput              []string // their output, and the package's own when it failed
	pkgOutput               []string // the package-level output (no test), last lines kept
	pkgFailed               bool     // the package-level "fail" event (a crash, a timeout, a failure)
	suites                  map[string]*suite
	slowest                 []timed // top-level tests by time, longest first

	running map[string]bool     // top-level tests started and not ended
	output  map[string][]string // a running test's output
	wanted  []string            // suite names
}

// suite counts the direct subtests of one test (its cases) and names
// them, in the order they ended.
type suite struct {
	passed, skipped, failed int
	cases                   []string
}

// timed is a top-level test's duration.
type timed struct {
	test string
	d    time.Duration
}

// maxPkgOutput bounds the package-level output kept.
const maxPkgOutput = 200

func newResult(suites []string) *result {
	return &result{running: map[string]bool{}, output: map[string][]string{}, suites: map[string]*suite{}, wanted: suites}
}

// add takes one line of test2json output.
func (r *result) add(line []byte) {
	var e event
	if err := json.Unmarshal(line, &e); err != nil {
		r.pkgLine(string(line) + "\n")
		return
	}
	if e.Test == "" {
		switch e.Action {
		case "output":
			r.pkgLine(e.Output)
		case "fail":
			r.pkgFailed = true
		}
		return
	}
	top := !strings.Contains(e.Test, "/")
	switch e.Action {
	case "run":
		if top {
			r.running[e.Test] = true
		}
	case "output":
		r.output[e.Test] = append(r.output[e.Test], e.Output)
	case "pass", "skip", "fail":
		out := r.output[e.Test]
		delete(r.output, e.Test)
		if top {
			delete(r.running, e.Test)
			r.slowest = append(r.slowest, timed{e.Test, time.Duration(e.Elapsed * float64(time.Second))})
		}
		switch e.Action {
		case "pass":
			r.passed++
		case "skip":
			r.skipped++
			r.skips = append(r.skips, skip{e.Test, skipReason(out)})
		case "fail":
			r.failed++
			r.failures = append(r.failures, e.Test)
			r.failOutput = append(r.failOutput, out...)
		}
		r.countSuite(e)
	}
}

// countSuite counts e when it ends a direct subtest of a wanted suite.
func (r *result) countSuite(e event) {
	parent, rest, ok := strings.Cut(e.Test, "/")
	if !ok || strings.Contains(rest, "/") || !slices.Contains(r.wanted, parent) {
		return
	}
	s := r.suites[parent]
	if s == nil {
		s = &suite{}
		r.suites[parent] = s
	}
	s.cases = append(s.cases, rest)
	switch e.Action {
	case "pass":
		s.passed++
	case "skip":
		s.skipped++
	case "fail":
		s.failed++
	}
}

func (r *result) pkgLine(s string) {
	r.pkgOutput = append(r.pkgOutput, s)
	if len(r.pkgOutput) > maxPkgOutput {
		r.pkgOutput = r.pkgOutput[len(r.pkgOutput)-maxPkgOutput:]
	}
}

// current names the top-level tests running now.
func (r *result) current() []string {
	var names []string
	for n := range r.running {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// skipReason finds the reason in a skipped test's output: the lines
// t.Skip printed ("    file_test.go:28: reason"), without the framing
// lines of the test runner.
func skipReason(out []string) string {
	var lines []string
	for _, o := range out {
		for _, l := range strings.Split(strings.TrimRight(o, "\n"), "\n") {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
				continue
			}
			lines = append(lines, t)
		}
	}
	if len(lines) == 0 {
		return "(no reason given)"
	}
	// The reason is what Skip printed: the last lines; earlier ones are
	// the test's logs.
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " / ")
}
