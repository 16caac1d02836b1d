package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// newPool starts a pool of src for a test, closes it in cleanup, and
// checks, once the test has closed it and everything it handed out, that
// nothing outlives them.
func newPool(t *testing.T, src Source, size int, opts ...Option) *Pool {
	t.Helper()
	leakcheck.Check(t, socketPrefix(os.Getpid()))
	opts = append([]Option{WithCacheDir(testCache)}, opts...)
	p, err := NewPool(context.Background(), src, size, opts...)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Pool.Close: %v", err)
		}
	})
	return p
}

// waitFor polls cond until it holds, failing the test or benchmark after
// 30 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// agentPids returns the pids of the sandbox agents this test process
// started, directly or through helpers: the descendants whose argv[0] is
// cc-agent, found through /proc/PID/task/*/children as leakcheck does.
func agentPids() []int {
	var agents []int
	var walk func(pid int)
	walk = func(pid int) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			for _, field := range strings.Fields(string(b)) {
				child, err := strconv.Atoi(field)
				if err != nil {
					continue
				}
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
				if strings.HasPrefix(string(cmdline), "cc-agent\x00") {
					agents = append(agents, child) // below it: the sandbox's own
				} else {
					walk(child) // a helper
				}
			}
		}
	}
	walk(os.Getpid())
	return agents
}

func TestPool(t *testing.T) {
	p := newPool(t, HostImage(), 2, WithHostname("pooled"), WithEnv("FROM_POOL=yes"))
	waitFor(t, "two spares", func() bool { return p.Ready() == 2 })
	// More than the pool holds, taken at once: the last ones wait for
	// replacements.
	const n = 5
	insts := make([]*Instance, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() { insts[k], errs[k] = p.New(context.Background()) })
	}
	wg.Wait()
	for k, inst := range insts {
		if inst != nil {
			defer inst.Close()
		}
		if errs[k] != nil {
			t.Fatalf("Pool.New %d: %v", k, errs[k])
		}
	}
	ids := map[string]bool{}
	for k, inst := range insts {
		if ids[inst.ID()] {
			t.Fatalf("two sandboxes handed out with id %s", inst.ID())
		}
		ids[inst.ID()] = true
		if got := run(t, inst, "hostname; echo $FROM_POOL"); got != "pooled\nyes\n" {
			t.Errorf("sandbox %d: hostname and env %q", k, got)
		}
		if err := inst.WriteFile("/tmp/mark", []byte(inst.ID()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for k, inst := range insts {
		b, err := inst.ReadFile("tmp/mark")
		if err != nil || string(b) != inst.ID() {
			t.Errorf("sandbox %d reads its own mark as %q, %v: pooled sandboxes share files", k, b, err)
		}
	}
	// Closing one handed out leaves the others and the pool running.
	if err := insts[0].Close(); err != nil {
		t.Fatal(err)
	}
	if got := run(t, insts[1], "echo still"); got != "still\n" {
		t.Errorf("after closing a sibling: %q", got)
	}
	inst, err := p.New(context.Background())
	if err != nil {
		t.Fatalf("Pool.New after a Close: %v", err)
	}
	defer inst.Close()
	if ids[inst.ID()] {
		t.Errorf("id %s handed out twice", inst.ID())
	}

	if err := p.Close(); err != nil {
		t.Fatalf("Pool.Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Pool.Close: %v", err)
	}
	if _, err := p.New(context.Background()); !errors.Is(err, ErrAlreadyClosed) {
		t.Errorf("Pool.New after Close: %v, want ErrAlreadyClosed", err)
	}
	// What the pool handed out outlives it, until its owner closes it.
	if got := run(t, inst, "echo mine"); got != "mine\n" {
		t.Errorf("a handed-out sandbox after Pool.Close: %q", got)
	}
}

func TestPoolErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewPool(ctx, HostImage(), 0, WithCacheDir(testCache)); err == nil {
		t.Error("NewPool of size 0 succeeded")
	}
	if _, err := NewPool(ctx, nil, 1); err == nil {
		t.Error("NewPool of a nil source succeeded")
	}
	if _, err := NewPool(ctx, HostImage(), 1, WithTimeout(-1)); err == nil {
		t.Error("NewPool with a bad option succeeded")
	}
	if _, err := NewPool(ctx, HostImage(), 1, WithCacheDir(testCache), WithBackend("nonesuch")); err == nil {
		t.Error("NewPool with an unknown backend succeeded")
	}
	p := newPool(t, HostImage(), 1)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if inst, err := p.New(cancelled); !errors.Is(err, context.Canceled) {
		if inst != nil {
			inst.Close()
		}
		t.Errorf("Pool.New with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestPoolTimeout checks that WithTimeout counts from the hand-out: a
// sandbox that waited in the pool longer than its timeout is handed out
// alive, and its timeout stops it afterwards.
func TestPoolTimeout(t *testing.T) {
	const timeout = 2 * time.Second
	p := newPool(t, HostImage(), 1, WithTimeout(timeout))
	time.Sleep(timeout + timeout/2)
	handedOut := time.Now() // before New arms the timeout
	inst, err := p.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	// The age of the sandbox's init, from the host's boot clock that
	// /proc shows inside: it waited through the sleep above.
	out := run(t, inst, "cat /proc/uptime /proc/1/stat")
	lines := strings.SplitN(out, "\n", 2)
	uptime, err := strconv.ParseFloat(strings.Fields(lines[0])[0], 64)
	if err != nil {
		t.Fatalf("uptime in %q: %v", out, err)
	}
	_, stat, ok := strings.Cut(lines[1], ") ")
	fields := strings.Fields(stat)
	if !ok || len(fields) < 20 {
		t.Fatalf("no start time in %q", lines[1])
	}
	ticks, err := strconv.ParseFloat(fields[19], 64)
	if err != nil {
		t.Fatalf("start time in %q: %v", lines[1], err)
	}
	if age := uptime - ticks/100; age < timeout.Seconds() {
		t.Errorf("the sandbox handed out is %.2fs old: the one that waited in the pool longer than its timeout was not handed out", age)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := inst.Wait(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait: %v, want ErrTimeout", err)
	}
	if d := time.Since(handedOut); d < timeout {
		t.Errorf("stopped %v after the hand-out, before its %v timeout", d, timeout)
	}
}

// TestSetTimeoutAfterStop checks the runner's SetTimeout, which Pool.New
// uses, on a sandbox that has stopped on its own: in this process and
// through a helper, it reports ErrNotRunning.
func TestSetTimeoutAfterStop(t *testing.T) {
	inst := hostInstance(t)
	if err := inst.runner.SetTimeout(-time.Second); err == nil {
		t.Error("SetTimeout of a negative duration succeeded")
	}
	if err := syscall.Kill(inst.runner.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-inst.Done()
	if err := inst.runner.SetTimeout(time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SetTimeout on a stopped sandbox: %v, want ErrNotRunning", err)
	}
}

// flakySource starts sandboxes from the host image the first good times,
// then fails.
type flakySource struct {
	good  atomic.Int32
	inner Source
}

var errFlakySource = errors.New("the test source fails from now on")

func (s *flakySource) rootfs(ctx context.Context, o *storeOptions) (*rootfsSpec, error) {
	if s.good.Add(-1) < 0 {
		return nil, errFlakySource
	}
	return s.inner.rootfs(ctx, o)
}

// TestPoolStartFails checks that a start that fails in the background
// reaches the next Pool.New as its error, and the pool goes on.
func TestPoolStartFails(t *testing.T) {
	src := &flakySource{inner: HostImage()}
	src.good.Store(1)
	p := newPool(t, src, 1)
	inst, err := p.New(context.Background())
	if err != nil {
		t.Fatalf("the sandbox NewPool started: %v", err)
	}
	defer inst.Close()
	for range 2 {
		if inst, err := p.New(context.Background()); !errors.Is(err, errFlakySource) {
			if inst != nil {
				inst.Close()
			}
			t.Fatalf("Pool.New after a failed start: %v, want the start's error", err)
		}
	}
	if got := run(t, inst, "echo ok"); got != "ok\n" {
		t.Errorf("the sandbox handed out before: %q", got)
	}
	// Once starts work again, so does the pool; a failure started before
	// may still be waiting to be reported first.
	src.good.Store(1 << 20)
	var again *Instance
	for range 3 {
		if again, err = p.New(context.Background()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Pool.New once the source works again: %v", err)
	}
	defer again.Close()
	if got := run(t, again, "echo again"); got != "again\n" {
		t.Errorf("the sandbox after recovery: %q", got)
	}
}

// TestPoolSpareDies checks that a spare that stops while it waits is
// replaced, and never handed out.
func TestPoolSpareDies(t *testing.T) {
	p := newPool(t, HostImage(), 1)
	waitFor(t, "a spare", func() bool { return p.Ready() == 1 })
	pids := agentPids()
	if len(pids) != 1 {
		t.Fatalf("agents of this process: %v, want the spare's alone", pids)
	}
	dead := pids[0]
	if err := syscall.Kill(dead, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new spare in place of the dead one", func() bool {
		pids := agentPids()
		return p.Ready() == 1 && len(pids) == 1 && pids[0] != dead
	})
	inst, err := p.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if inst.runner.Pid() == dead {
		t.Fatal("the dead spare was handed out")
	}
	if got := run(t, inst, "echo alive"); got != "alive\n" {
		t.Errorf("the replacement: %q", got)
	}
}

// TestPoolCloseWhileWaiting closes a pool while a New waits for a start:
// the New returns (a sandbox or ErrAlreadyClosed) and nothing is left.
func TestPoolCloseWhileWaiting(t *testing.T) {
	p := newPool(t, HostImage(), 1)
	first, err := p.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	type result struct {
		inst *Instance
		err  error
	}
	got := make(chan result, 1)
	go func() {
		inst, err := p.New(context.Background())
		got <- result{inst, err}
	}()
	if err := p.Close(); err != nil {
		t.Errorf("Pool.Close: %v", err)
	}
	r := <-got
	if r.err == nil {
		r.inst.Close() // the start finished before Close: it is the caller's
	} else if !errors.Is(r.err, ErrAlreadyClosed) {
		t.Errorf("Pool.New during Close: %v, want ErrAlreadyClosed", r.err)
	}
}
