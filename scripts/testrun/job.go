package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// job is one package's test binary run in one phase.
type job struct {
	phase *phase
	pkg   *pkg
	name  string // the package as shown: its path in the module ("." for the root)
	index int    // its place in the list of jobs

	mu      sync.Mutex // guards res and started while it runs
	res     *result
	started time.Time
	elapsed time.Duration
	// cpu is the user and system CPU time of the binary and of the
	// processes it waited for (sandboxes, VMs, helpers; su and unshare
	// wait for theirs).
	cpu time.Duration
	err error // the binary's exit, or why it could not run
}

func (j *job) ok() bool { return j.err == nil && j.res.failed == 0 && !j.res.pkgFailed }

// runPhases runs every phase's jobs, at most c.jobs at once, the largest
// packages first, and records the results in rep.
func runPhases(ctx context.Context, c *config, rep *report, b *built, work string, phases []*phase) {
	var jobs []*job
	left := map[*phase]int{}
	for _, p := range phases {
		for _, k := range b.pkgs[p.name] {
			name := "." + strings.TrimPrefix(k.importPath, b.modPath)
			if name != "." {
				name = "./" + strings.TrimPrefix(name, "./")
			}
			jobs = append(jobs, &job{phase: p, pkg: k, name: name, res: newResult(c.suites)})
			left[p]++
		}
		rep.phases = append(rep.phases, &phaseReport{phase: p})
	}
	slices.SortStableFunc(jobs, func(a, b *job) int { return b.pkg.testFiles - a.pkg.testFiles })
	for i, j := range jobs {
		j.index = i
	}
	var ru *rootless
	for _, p := range phases {
		if p.rootless {
			var err error
			if ru, err = setupRootless(ctx, c.user, work, b); err != nil {
				pr := rep.phaseOf(p)
				pr.err = err
				say("== %s: cannot run: %v", p.name, err)
			}
			break
		}
	}

	if err := os.MkdirAll(filepath.Join(work, "t"), 0o755); err != nil {
		for _, pr := range rep.phases {
			pr.err = err
		}
		return
	}
	var mu sync.Mutex // guards left, and the phase reports' start and end
	sem := make(chan struct{}, c.jobs)
	var wg sync.WaitGroup
	stopBeat := heartbeat(c.heartbeat, jobs)
	for _, j := range jobs {
		pr := rep.phaseOf(j.phase)
		if pr.err != nil {
			continue
		}
		sem <- struct{}{}
		mu.Lock()
		if pr.start.IsZero() {
			pr.start = time.Now()
			say("== %s: started (%s; %s)", j.phase.name, j.phase.describe(), plural(left[j.phase], "package"))
		}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j.run(ctx, c, b, work, ru)
			j.report()
			mu.Lock()
			defer mu.Unlock()
			pr.jobs = append(pr.jobs, j)
			if left[j.phase]--; left[j.phase] == 0 {
				pr.end = time.Now()
				say("== %s: %s in %s, cpu %s (%s)", j.phase.name, pr.verdict(), dur(pr.end.Sub(pr.start)), dur(pr.cpu()), pr.counts())
			}
		}()
	}
	wg.Wait()
	stopBeat()
}

// heartbeat says, every interval, where each running job is; the
// returned function stops it.
func heartbeat(interval time.Duration, jobs []*job) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var lines []string
			for _, j := range jobs {
				j.mu.Lock()
				if !j.started.IsZero() && j.elapsed == 0 {
					r := j.res
					lines = append(lines, fmt.Sprintf("   [%s %s] running for %s: %d passed, %d skipped, %d failed; now in %s",
						j.phase.name, j.name, dur(time.Since(j.started)), r.passed, r.skipped, r.failed, strings.Join(r.current(), ", ")))
				}
				j.mu.Unlock()
			}
			sayBlock(lines)
		}
	}()
	return func() { close(done); wg.Wait() }
}

// run runs the job's test binary through test2json.
func (j *job) run(ctx context.Context, c *config, b *built, work string, ru *rootless) {
	j.mu.Lock()
	j.started = time.Now()
	j.mu.Unlock()
	err := j.exec(ctx, c, b, work, ru)
	j.mu.Lock()
	j.elapsed = time.Since(j.started)
	j.err = err
	j.mu.Unlock()
}

// exec runs the test binary and records the CPU time it used in j.cpu.
func (j *job) exec(ctx context.Context, c *config, b *built, work string, ru *rootless) error {
	label := j.phase.name + "-" + strings.NewReplacer("/", "_", ".", "_").Replace(j.name)
	// Each run has a temporary directory of its own, like /tmp (mode
	// 1777): runs side by side never see each other's files (the leak
	// checks look for names there), and nothing is left behind. Its path
	// is short, for socket names and podman's runroot.
	tmp := filepath.Join(work, "t", strconv.Itoa(j.index))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o777|fs.ModeSticky); err != nil { // os.Chmod takes fs.ModeSticky, not 0o1000
		return err
	}
	defer removeAll(tmp)
	args := []string{j.pkg.bin, "-test.paniconexit0", "-test.v=test2json", "-test.count=1", "-test.timeout=" + c.timeout.String()}
	args = append(args, j.phase.args()...)
	env := append([]string{
		"TMPDIR=" + tmp,
		"CC_TEST_EXAMPLES_BIN=" + b.examples,
		"CC_TEST_HELPER_BIN=" + b.helper,
		"CC_TEST_CC_BIN=" + b.cc[j.phase.build],
		"GORACE=atexit_sleep_ms=0",
	}, j.phase.env...)
	var cmd *exec.Cmd
	if j.phase.rootless {
		if ru == nil {
			return errors.New("no rootless setup")
		}
		var err error
		if cmd, err = ru.command(ctx, j.pkg.dir, env, args); err != nil {
			return err
		}
	} else {
		cmd = exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = j.pkg.dir
		cmd.Env = append(os.Environ(), env...)
	}
	privateMounts(cmd)
	// The binary's process group goes as a whole when the run is
	// cancelled: sandboxes, helpers and su with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }

	logf, err := os.Create(filepath.Join(work, label+".json"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// The binary writes straight into a pipe that test2json reads.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	t2j := exec.Command(b.test2json, "-t", "-p", j.pkg.importPath)
	t2j.Stdin, t2j.Stderr = pr, os.Stderr
	events, err := t2j.StdoutPipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	if err := t2j.Start(); err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	runErr := cmd.Start()
	pw.Close()
	var waitErr error
	waited := make(chan struct{})
	if runErr == nil {
		go func() { waitErr = cmd.Wait(); close(waited) }()
	} else {
		close(waited)
	}
	// Something the binary left behind that holds its output would keep
	// test2json waiting: 30 s after the binary's exit its process group
	// is killed, 10 s later test2json, and the run fails saying so.
	var leftover atomic.Bool
	scanned := make(chan struct{})
	go func() {
		<-waited
		select {
		case <-scanned:
			return
		case <-time.After(30 * time.Second):
		}
		leftover.Store(true)
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		select {
		case <-scanned:
		case <-time.After(10 * time.Second):
			t2j.Process.Kill()
		}
	}()
	sc := bufio.NewScanner(events)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		logf.Write(append(sc.Bytes(), '\n'))
		j.mu.Lock()
		j.res.add(sc.Bytes())
		j.mu.Unlock()
	}
	t2jErr := t2j.Wait()
	close(scanned)
	<-waited
	if ps := cmd.ProcessState; ps != nil {
		j.mu.Lock()
		j.cpu = ps.UserTime() + ps.SystemTime()
		j.mu.Unlock()
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("starting the test binary: %w", runErr)
	case leftover.Load():
		return errors.New("processes it started still held its output 30 s after it exited (killed)")
	case waitErr != nil:
		return fmt.Errorf("the test binary: %w", waitErr)
	case t2jErr != nil:
		return fmt.Errorf("test2json: %w", t2jErr)
	}
	return nil
}

// privateMounts makes cmd run in a mount namespace of its own (as root,
// with unshare), whose mounts are private: a run's leak checks count the
// mounts they see, and the runs beside it (or anything else on the
// machine) must not add to them. Without root it changes nothing.
func privateMounts(cmd *exec.Cmd) {
	if os.Geteuid() != 0 {
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return
	}
	cmd.Args = append([]string{unshare, "--mount", "--propagation", "private", "--"}, cmd.Args...)
	cmd.Path = unshare
}
