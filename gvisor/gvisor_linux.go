package gvisor

import (
	"os"

	"github.com/ccsandbox/sandbox/internal/engine"
	hvgvisor "github.com/ccsandbox/sandbox/internal/hv/gvisor"
	"gvisor.dev/gvisor/runsc/cli/maincli"
)

func init() {
	hvgvisor.RunLauncher(maincli.Main) // in a sandbox's launcher, it becomes runsc
	if hvgvisor.IsRunsc(os.Args) {
		// runsc parses the command line's flag set, where its packages
		// registered flags at init; the program's own flags stay there
		// unused.
		maincli.Main()
		os.Exit(0)
	}
	engine.RegisterBackend(engine.BackendGVisor, hvgvisor.Backend{SelfRunsc: true})
}
