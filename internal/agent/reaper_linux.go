package agent

import (
	"os"
	"os/signal"
	"sync"

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
	caps    *capCut // cuts the thread a process is forked on; nil: no cut
}

// proc is a process the agent started.
type proc struct {
	pid    int
	exited chan struct{} // closed when reaped; status is set before
	status ipc.ExitStatus
	pidfd  *os.File // readable once the process exits; nil without pidfds
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

// start runs fork, which starts a process and returns its pid, so that
// the reaper cannot reap the new process before it is registered. Where
// pidfds work, fork is given somewhere to store one (for
// syscall.SysProcAttr.PidFD), for await.
func (r *reaper) start(fork func(pidfd *int) (int, error)) (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pid int
	var err error
	pidfd := -1
	var pidfdp *int
	if pidfdsWork() {
		pidfdp = &pidfd
	}
	if cutErr := r.caps.fork(func() { pid, err = fork(pidfdp) }); cutErr != nil {
		return nil, cutErr
	}
	if err != nil {
		return nil, err
	}
	p := &proc{pid: pid, exited: make(chan struct{})}
	if pidfd >= 0 {
		p.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
	}
	r.waiting[pid] = p
	return p, nil
}

// await returns once p has been reaped, or the error of req's context
// when the client hangs up first. With a pidfd, the handler's own thread
// waits for the exit and reaps p itself: SIGCHLD would reach it through
// the runtime's signal goroutine and the reaper loop, two thread wake-ups
// later. SIGCHLD still reaps orphans, and whichever comes first reaps p.
func (r *reaper) await(req *ipc.Request, p *proc) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if p.pidfd != nil {
		if rc, err := p.pidfd.SyscallConn(); err == nil {
			var werr error
			// Control fails once the reaper has closed the pidfd: p is reaped.
			if rc.Control(func(fd uintptr) { werr = req.AwaitReadable(int(fd)) }) == nil {
				if werr != nil {
					return werr
				}
				r.collect(p)
			}
		}
	}
	select {
	case <-p.exited:
		return nil
	case <-req.Context().Done():
		return req.Context().Err()
	}
}

// collect reaps p if it has exited.
func (r *reaper) collect(p *proc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-p.exited:
		return
	default:
	}
	// p is registered and not reaped, so its pid is still its own.
	var ws unix.WaitStatus
	var ru unix.Rusage
	pid, err := unix.Wait4(p.pid, &ws, unix.WNOHANG, &ru)
	if err != nil || pid != p.pid {
		return // not yet; SIGCHLD reaps it
	}
	r.reaped(p, ws, &ru)
}

// reaped records the exit of p, reaped; r.mu is held.
func (r *reaper) reaped(p *proc, ws unix.WaitStatus, ru *unix.Rusage) {
	delete(r.waiting, p.pid)
	p.status = exitStatus(p.pid, ws, ru)
	if p.pidfd != nil {
		p.pidfd.Close()
	}
	close(p.exited)
}

// pidfdsWork reports whether this kernel gives a pidfd and lets waitid
// use one (Linux 5.4): waitid on a pidfd of the agent itself answers
// ECHILD, where an older kernel answers EINVAL. It asks once, at the
// first command or in warmUp, not while the sandbox starts.
var pidfdsWork = sync.OnceValue(func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var info unix.Siginfo
	err = unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil)
	return err == unix.ECHILD
})

// loop reaps on every SIGCHLD, and on nothing else: an idle sandbox's
// agent must not wake (a once-a-second tick here woke 10,000 idle agents
// 10,000 times a second, which took both cores of the machine). No exit
// goes unreaped: a SIGCHLD that arrives while one is buffered in r.sigs
// is dropped only when a reap is still to come, and reap collects every
// child that has exited by then, so a child that exits after reap's last
// wait4 raises a SIGCHLD that finds the buffer empty.
func (r *reaper) loop() {
	defer close(r.stopped)
	for {
		select {
		case <-r.sigs:
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
		r.reaped(p, ws, &ru)
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

// close stops the reaper loop and closes the pidfds.
func (r *reaper) close() {
	signal.Stop(r.sigs)
	close(r.stop)
	<-r.stopped
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.waiting {
		if p.pidfd != nil {
			p.pidfd.Close()
		}
	}
}
