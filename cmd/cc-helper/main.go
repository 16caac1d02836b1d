// Command cc-helper runs sandboxes on behalf of programs that use the SDK
// in helper mode (CC_USE_HELPER=1, and by default on macOS and Windows):
// the SDK starts one cc-helper per sandbox, with "-socket PATH", and talks
// to it over that Unix socket (see internal/helper). Installing it is
// optional: without it, the SDK re-executes the program itself as the
// helper. Install it next to your program, in ~/.local/share/cc/bin, in
// $PATH, or point CC_HELPER_PATH at it.
package main

import (
	"os"

	"github.com/ccsandbox/sandbox/internal/helper"
)

func main() {
	os.Exit(helper.Main(os.Args[1:]))
}
