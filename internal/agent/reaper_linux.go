package agent

import (
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"golang.org/x/sys/unix"
)

// reaper waits for every child of the agent. As PID 1 the agent inherits
// every orphan of the sandbox, and must reap them all; it also collects the
// status of the processes it started itself. No other code may wait for a
// child: this reaper owns them all.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]*proc // guarded by mu: started and not yet reaped
	sigs    chan os.Signal
	stop    chan struct{}
	stopped chan struct{}
	thread  *spawnThread // where processes are forked; nil: any thread
}

// proc is a process the agent started.
type proc struct {
	pid    int
	exited chan struct{} // closed when reaped; status is set before
	status ipc.ExitStatus
}

func newReaper() *reaper {
	r := &reaper{
		waiting: make(map[int]*proc),
		sigs:    make(chan os.Signal, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	signal.Notify(r.sigs, unix.SIGCHLD)
	go r.loop()
	return r
}

// start runs fork (which starts a process and returns its pid) so that the
// reaper cannot reap the new process before it is registered.
func (r *reaper) start(fork func() (int, error)) (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pid int
	var err error
	r.thread.run(func() { pid, err = fork() })
	if err != nil {
		return nil, err
	}
	p := &proc{pid: pid, exited: make(chan struct{})}
	r.waiting[pid] = p
	return p, nil
}

func (r *reaper) loop() {
	defer close(r.stopped)
	// A slow tick guards against a lost wake-up.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.sigs:
		case <-tick.C:
		case <-r.stop:
			return
		}
		r.reap()
	}
}

// reap collects every child that has exited.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, &ru)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		p, ok := r.waiting[pid]
		if !ok {
			continue // an orphan
		}
		delete(r.waiting, pid)
		p.status = exitStatus(pid, ws, &ru)
		close(p.exited)
	}
}

// exitStatus converts what wait4 reports.
func exitStatus(pid int, ws unix.WaitStatus, ru *unix.Rusage) ipc.ExitStatus {
	s := ipc.ExitStatus{
		Pid:      int32(pid),
		Exited:   ws.Exited(),
		Code:     int32(ws.ExitStatus()),
		UserNs:   ru.Utime.Nano(),
		SysNs:    ru.Stime.Nano(),
		MaxRSSKB: ru.Maxrss,
	}
	if ws.Signaled() {
		s.Signal = int32(ws.Signal())
		s.CoreDump = ws.CoreDump()
		s.Code = -1
	}
	return s
}

// close stops the reaper loop.
func (r *reaper) close() {
	signal.Stop(r.sigs)
	close(r.stop)
	<-r.stopped
}
