// Command cc-helper runs sandboxes on behalf of programs that use the SDK
// in helper mode (CC_USE_HELPER=1, and by default on macOS and Windows):
// the SDK starts one cc-helper per sandbox, with "-socket PATH", and talks
// to it over that Unix socket (see internal/helper). Installing it is
// optional: without it, the SDK re-executes the program itself as the
// helper. Install it next to your program, in ~/.local/share/cc/bin, in
// $PATH, or point CC_HELPER_PATH at it.
//
// cc-helper serves every backend, gVisor included: it links runsc in (the
// package gvisor), so it must be built statically, with CGO_ENABLED=0, for
// its gVisor sandboxes to start (they say so otherwise). It links the SDK
// in too, whose builder runs its network clients' builds (Remote.Build).
package main

import (
	"os"

	_ "github.com/ccsandbox/sandbox"
	_ "github.com/ccsandbox/sandbox/gvisor"
	"github.com/ccsandbox/sandbox/internal/helper"
)

func main() {
	os.Exit(helper.Main(os.Args[1:]))
}
