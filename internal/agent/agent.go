package agent

import (
	"fmt"
	"os"
)

// Values of EnvMarker: how the agent was started, and so how it sets up.
const (
	ModeNamespaces = "1"  // re-executed by the namespace backend (descriptors 3-5, see Fd*)
	ModeVM         = "vm" // /init of a virtual machine (the kernel passes the marker from its command line)
)

// runtimeGODEBUG is the agent's GODEBUG. containermaxprocs=0: the Go
// runtime would otherwise open its cgroup's CPU limit files at start, on
// the host, and keep them open for the process's life (see
// runtime/cgroup_linux.go); the agent would hold host files inside the
// sandbox. With it the runtime reads them once and closes them.
const runtimeGODEBUG = "containermaxprocs=0"

// Environ returns the environment of an agent started in mode.
func Environ(mode string) []string {
	env := []string{EnvMarker + "=" + mode, "GODEBUG=" + runtimeGODEBUG}
	if mode == ModeNamespaces {
		// An idle agent needs one P: fewer threads and per-P caches, so
		// less memory per sandbox (BenchmarkIdlePSS). Its blocking calls
		// (forks, waits, descriptor passing) still get threads of their
		// own.
		env = append(env, "GOMAXPROCS=1")
	}
	return env
}

func init() {
	if os.Getenv(EnvMarker) == "" {
		return
	}
	os.Exit(Main())
}

// Main runs the agent and returns its exit code. It is called by this
// package's init function when the process carries EnvMarker.
func Main() int {
	var err error
	switch mode := os.Getenv(EnvMarker); mode {
	case ModeNamespaces:
		err = run()
	case ModeVM:
		err = runVM()
	case ModeGVisor:
		err = runGVisor()
	default:
		err = fmt.Errorf("unknown agent mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cc agent: %v\n", err)
		return 1
	}
	return 0
}
