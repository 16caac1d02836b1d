package agent

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// deadlySignals are the signals whose default action ends a process and
// which the Go runtime acts on (it exits) unless the program asks for them,
// and the stop signals a process may catch (SIGTSTP, SIGTTIN, SIGTTOU),
// whose default action gVisor applies even to a namespace's init. SIGKILL
// and SIGSTOP are not among them: the kernel drops those for a namespace's
// init when they come from inside it (in gVisor, the filter refuses them
// to process 1; see filterProgram's guardInit).
var deadlySignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS,
	unix.SIGFPE, unix.SIGSEGV, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE, unix.SIGALRM, unix.SIGTERM,
	unix.SIGSTKFLT, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGVTALRM, unix.SIGPROF, unix.SIGSYS, unix.SIGPWR,
	unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
}

// holdSignals makes the agent, as PID 1, live through any signal code in
// the sandbox sends it (kill -TERM 1): the kernel delivers to a
// namespace's init from inside only the signals it has a handler for, and
// the Go runtime has one for each of these that exits the process. They
// are caught and dropped here. Caught, not ignored: an ignored signal
// stays ignored in the commands the agent starts, a caught one is reset
// to its default by exec. The host ends the agent with SIGKILL from
// outside the namespace, which no handler stops.
//
// It does nothing unless the agent is PID 1. Each run function calls it
// before its agent serves: the namespace and gVisor agents early
// (holdSignalsEarly).
func holdSignals() {
	if os.Getpid() != 1 {
		return
	}
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, deadlySignals...)
	go func() {
		for range ch {
		}
	}()
}

// holdSignalsEarly runs holdSignals on a goroutine of its own and returns
// a channel closed when it is done. Catching a signal is a round trip to
// the runtime's signal thread, and the agent's goroutine, inside a package
// init, is locked to the main thread, so each one costs two thread
// switches: about 0.6 ms for all of them on a 2-vCPU machine, a twentieth
// of a sandbox's start (2.7 ms in gVisor, where thread switches are
// dearer). The namespace and gVisor agents start it first and wait for it
// after their setup, so it overlaps the wait for the configuration and the
// mounts, and it is done before anything runs in the sandbox.
func holdSignalsEarly() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		holdSignals()
		close(done)
	}()
	return done
}
