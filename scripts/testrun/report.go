package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// report collects the outcome of every step and phase for the summary.
type report struct {
	start  time.Time
	suites []string
	mu     sync.Mutex // guards steps
	steps  []stepReport
	phases []*phaseReport
}

type stepReport struct {
	name string
	d    time.Duration
	cpu  time.Duration // user and system CPU of its commands
	err  error
}

// phaseReport is one phase's outcome.
type phaseReport struct {
	phase      *phase
	start, end time.Time
	jobs       []*job // in the order they ended
	err        error  // the phase could not run
}

// step runs a step between its header and its time, and records it.
func (r *report) step(name, what string, f func() error) bool {
	say("== %s: %s", name, what)
	t, c := time.Now(), childrenCPU()
	err := f()
	d, cpu := time.Since(t), childrenCPU()-c
	r.addStep(stepReport{name, d, cpu, err})
	if err != nil {
		say("== %s: FAILED after %s: %v", name, dur(d), err)
		return false
	}
	say("== %s: done in %s (cpu %s)", name, dur(d), dur(cpu))
	return true
}

func (r *report) addStep(s stepReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, s)
}

// beside starts steps that run beside the phases, niced, each printing
// its output in one block when it ends; the returned function waits for
// them.
func (r *report) beside(ctx context.Context, steps []namedCmd) (wait func()) {
	var wg sync.WaitGroup
	for _, s := range steps {
		say("== %s: started beside the test phases (%s)", s.name, s.cmd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			args := []string{"sh", "-c", s.cmd}
			if nice, err := exec.LookPath("nice"); err == nil {
				args = append([]string{nice, "-n", "19"}, args...)
			}
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			d := time.Since(t)
			var cpu time.Duration
			if ps := cmd.ProcessState; ps != nil {
				cpu = ps.UserTime() + ps.SystemTime()
			}
			r.addStep(stepReport{s.name, d, cpu, err})
			var lines []string
			if out.Len() > 0 {
				lines = append(lines, out.String())
			}
			if err != nil {
				lines = append(lines, fmt.Sprintf("== %s: FAILED after %s: %v", s.name, dur(d), err))
			} else {
				lines = append(lines, fmt.Sprintf("== %s: done in %s (cpu %s)", s.name, dur(d), dur(cpu)))
			}
			sayBlock(lines)
		}()
	}
	return wg.Wait
}

func (r *report) phaseOf(p *phase) *phaseReport {
	for _, pr := range r.phases {
		if pr.phase == p {
			return pr
		}
	}
	panic("no report for phase " + p.name)
}

// ok reports whether the phase ran and everything in it passed.
func (pr *phaseReport) ok() bool {
	if pr.err != nil || pr.end.IsZero() {
		return false
	}
	for _, j := range pr.jobs {
		if !j.ok() {
			return false
		}
	}
	return true
}

func (pr *phaseReport) verdict() string {
	if pr.ok() {
		return "ok"
	}
	return "FAILED"
}

// counts sums the phase's tests.
func (pr *phaseReport) counts() string {
	var p, s, f int
	for _, j := range pr.jobs {
		p, s, f = p+j.res.passed, s+j.res.skipped, f+j.res.failed
	}
	return fmt.Sprintf("%s; tests and subtests: %d passed, %d skipped, %d failed", plural(len(pr.jobs), "package"), p, s, f)
}

// cpu sums the CPU time of the phase's test binaries.
func (pr *phaseReport) cpu() time.Duration {
	var d time.Duration
	for _, j := range pr.jobs {
		d += j.cpu
	}
	return d
}

// report prints the end of a job: its verdict line and, when it failed,
// what failed and its output.
func (j *job) report() {
	r := j.res
	verdict := "ok  "
	if !j.ok() {
		verdict = "FAIL"
	}
	lines := []string{fmt.Sprintf("   [%s] %s %-22s %7s  cpu %7s  %d passed, %d skipped, %d failed",
		j.phase.name, verdict, j.name, dur(j.elapsed), dur(j.cpu), r.passed, r.skipped, r.failed)}
	if !j.ok() {
		lines = append(lines, r.failOutput...)
		if j.err != nil || r.failed == 0 {
			lines = append(lines, r.pkgOutput...)
		}
		if j.err != nil {
			lines = append(lines, fmt.Sprintf("   [%s] %s: %v", j.phase.name, j.name, j.err))
		}
	}
	sayBlock(lines)
}

// print prints the summary and returns the exit code.
func (r *report) print() int {
	failed := false
	var b strings.Builder
	fmt.Fprintf(&b, "\n== summary\n")
	fmt.Fprintf(&b, "   %-10s %8s %8s  %s\n", "step", "time", "cpu", "result")
	for _, s := range r.steps {
		res := "ok"
		if s.err != nil {
			res, failed = "FAILED: "+s.err.Error(), true
		}
		fmt.Fprintf(&b, "   %-10s %8s %8s  %s\n", s.name, dur(s.d), dur(s.cpu), res)
	}
	var first, last time.Time
	for _, pr := range r.phases {
		switch {
		case pr.err != nil:
			failed = true
			fmt.Fprintf(&b, "   %-10s %8s %8s  FAILED: %v\n", pr.phase.name, "-", "-", pr.err)
			continue
		case pr.start.IsZero():
			failed = true
			fmt.Fprintf(&b, "   %-10s %8s %8s  not run\n", pr.phase.name, "-", "-")
			continue
		case pr.end.IsZero():
			failed = true
			fmt.Fprintf(&b, "   %-10s %8s %8s  interrupted\n", pr.phase.name, "-", "-")
			continue
		}
		if first.IsZero() || pr.start.Before(first) {
			first = pr.start
		}
		if pr.end.After(last) {
			last = pr.end
		}
		if !pr.ok() {
			failed = true
		}
		fmt.Fprintf(&b, "   %-10s %8s %8s  %s: %s\n", pr.phase.name, dur(pr.end.Sub(pr.start)), dur(pr.cpu()), pr.verdict(), pr.counts())
	}
	if !first.IsZero() && len(r.phases) > 1 {
		fmt.Fprintf(&b, "   the phases ran side by side: %s from the first start to the last end\n", dur(last.Sub(first)))
	}
	r.printSuites(&b)
	r.printExcepts(&b)
	r.printSkips(&b)
	r.printSlowest(&b)
	failed = r.printFailures(&b) || failed
	total, verdict := time.Since(r.start), "PASS"
	if failed {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s (%s in all, cpu %s)\n", verdict, dur(total), dur(childrenCPU()))
	sayBlock([]string{b.String()})
	if failed {
		return 1
	}
	return 0
}

// printSuites prints, for each suite asked for, its cases per phase; a
// phase that ran a selection (fewer cases than another phase) names them.
func (r *report) printSuites(b *strings.Builder) {
	for _, name := range r.suites {
		fmt.Fprintf(b, "\n   %s, cases per phase:\n", name)
		per := make([]*suite, len(r.phases))
		most := 0
		for i, pr := range r.phases {
			for _, j := range pr.jobs {
				if c := j.res.suites[name]; c != nil {
					if per[i] == nil {
						per[i] = &suite{}
					}
					s := per[i]
					s.passed, s.skipped, s.failed = s.passed+c.passed, s.skipped+c.skipped, s.failed+c.failed
					s.cases = append(s.cases, c.cases...)
				}
			}
			if per[i] != nil {
				most = max(most, len(per[i].cases))
			}
		}
		for i, pr := range r.phases {
			s := per[i]
			if s == nil {
				fmt.Fprintf(b, "     %-10s did not run\n", pr.phase.name)
				continue
			}
			fmt.Fprintf(b, "     %-10s %d run: %d passed, %d skipped, %d failed\n", pr.phase.name, s.passed+s.skipped+s.failed, s.passed, s.skipped, s.failed)
			if len(s.cases) < most {
				cases := slices.Clone(s.cases)
				slices.Sort(cases)
				fmt.Fprintf(b, "     %-10s   a selection: %s\n", "", strings.Join(cases, " "))
			}
		}
	}
}

// printExcepts lists the tests each phase leaves out by its definition,
// with the reasons the phases file gives.
func (r *report) printExcepts(b *strings.Builder) {
	n := 0
	for _, pr := range r.phases {
		n += len(pr.phase.excepts)
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(b, "\n   left out by the phases' definitions (%d), with the reason each gives:\n", n)
	for _, pr := range r.phases {
		for _, e := range pr.phase.excepts {
			fmt.Fprintf(b, "     %-9s %s: %s\n", pr.phase.name, e.pattern, e.reason)
		}
	}
}

// printSkips lists every skipped test with its reason.
func (r *report) printSkips(b *strings.Builder) {
	n := 0
	for _, pr := range r.phases {
		for _, j := range pr.jobs {
			n += len(j.res.skips)
		}
	}
	fmt.Fprintf(b, "\n   skipped tests (%d), with the reason each gave:\n", n)
	for _, pr := range r.phases {
		jobs := slices.Clone(pr.jobs)
		slices.SortFunc(jobs, func(a, b *job) int { return strings.Compare(a.name, b.name) })
		for _, j := range jobs {
			for _, s := range j.res.skips {
				fmt.Fprintf(b, "     %-9s %s %s: %s\n", pr.phase.name, j.name, s.test, s.reason)
			}
		}
	}
}

// printSlowest lists the slowest top-level tests across phases.
func (r *report) printSlowest(b *strings.Builder) {
	type entry struct {
		where string
		timed
	}
	var all []entry
	for _, pr := range r.phases {
		for _, j := range pr.jobs {
			for _, t := range j.res.slowest {
				all = append(all, entry{pr.phase.name + " " + j.name, t})
			}
		}
	}
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b entry) int { return int(b.d - a.d) })
	fmt.Fprintf(b, "\n   slowest tests:\n")
	for _, e := range all[:min(10, len(all))] {
		fmt.Fprintf(b, "     %8s  %s %s\n", dur(e.d), e.where, e.test)
	}
}

// printFailures lists what failed; it reports whether anything did.
func (r *report) printFailures(b *strings.Builder) bool {
	var lines []string
	for _, pr := range r.phases {
		for _, j := range pr.jobs {
			for _, t := range j.res.failures {
				lines = append(lines, fmt.Sprintf("     %-9s %s %s", pr.phase.name, j.name, t))
			}
			if j.err != nil {
				lines = append(lines, fmt.Sprintf("     %-9s %s: %v", pr.phase.name, j.name, j.err))
			} else if j.res.pkgFailed && j.res.failed == 0 {
				lines = append(lines, fmt.Sprintf("     %-9s %s: failed with no failed test (see its output above)", pr.phase.name, j.name))
			}
		}
	}
	if len(lines) == 0 {
		fmt.Fprintf(b, "\n")
		return false
	}
	fmt.Fprintf(b, "\n   failed:\n%s\n\n", strings.Join(lines, "\n"))
	return true
}

// childrenCPU returns the user and system CPU time of the processes this
// one started and waited for, so far.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// plural says "1 package", "2 packages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
