// Command helper runs its sandbox through a helper process: the same
// public API, with the sandbox owned by a separate process (cc-helper when
// one is on PATH or named by CC_HELPER_PATH, else this program re-executed
// in helper mode). Commands, files and connections behave exactly as in
// process; when this program dies, even by SIGKILL, the helper and its
// sandbox go with it.
//
//	go run ./examples/helper
//
// Setting CC_USE_HELPER=1 in the environment does the same for any
// program, without code.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/ccsandbox/sandbox"
)

func main() {
	// Decided once, at the first sandbox call: set it before.
	os.Setenv("CC_USE_HELPER", "1")
	ctx := context.Background()
	inst, err := sandbox.New(ctx, sandbox.HostImage())
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()

	// PID 1 in the sandbox is its agent, a child of the helper rather
	// than of this program.
	out, err := inst.Command("echo", "hello from the sandbox of a helper").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(out))
	cmdline, err := inst.ReadFile("/proc/1/cmdline")
	if err != nil {
		log.Fatal(err)
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	fmt.Printf("the sandbox's PID 1 is %q: its agent, started by the helper process, not by this program\n", argv[0])
	if err := inst.WriteFile("/tmp/note", []byte("hello, note\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	b, err := inst.ReadFile("/tmp/note")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the host wrote /tmp/note through the helper and read back: %s", b)
	if err := inst.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("closed: the helper has exited")
}
