package agent

import (
	"fmt"
	"os"
)

func init() {
	if os.Getenv(EnvMarker) == "" {
		return
	}
	os.Exit(Main())
}

// Main runs the agent and returns its exit code. It is called by this
// package's init function when the process carries EnvMarker.
func Main() int {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cc agent: %v\n", err)
		return 1
	}
	return 0
}
