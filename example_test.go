package sandbox_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"strings"

	"github.com/ccsandbox/sandbox"
)

// A sandbox from the host's own programs: no download, no network.
func Example() {
	ctx := context.Background()
	inst, err := sandbox.New(ctx, sandbox.HostImage(), sandbox.WithHostname("example"))
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()

	out, err := inst.Command("sh", "-c", "echo hello from $(hostname)").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(out))
	// Output: hello from example
}

// Files go in with os-shaped calls and come out through io/fs.
func ExampleInstance_WriteFile() {
	inst, err := sandbox.New(context.Background(), sandbox.HostImage())
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()

	if err := inst.WriteFile("/tmp/greeting", []byte("hi\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	b, err := fs.ReadFile(inst, "tmp/greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", b)
	// Output: "hi\n"
}

// A Cmd is an exec.Cmd for the sandbox: pipes, exit codes, contexts.
func ExampleInstance_Command() {
	inst, err := sandbox.New(context.Background(), sandbox.HostImage())
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()

	cmd := inst.Command("sh", "-c", "tr a-z A-Z; exit 3")
	cmd.Stdin = strings.NewReader("shout\n")
	out, err := cmd.Output()
	fmt.Printf("%s%v\n", out, err)
	// Output:
	// SHOUT
	// exit status 3
}

// A warm pool keeps sandboxes started ahead of need: its New hands one out
// at once and starts a replacement in the background.
func ExamplePool() {
	ctx := context.Background()
	pool, err := sandbox.NewPool(ctx, sandbox.HostImage(), 2, sandbox.WithHostname("pooled"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close() // stops the spares; each sandbox handed out is closed by its owner

	for range 3 {
		inst, err := pool.New(ctx)
		if err != nil {
			log.Fatal(err)
		}
		out, err := inst.Command("hostname").Output()
		inst.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(string(out))
	}
	// Output:
	// pooled
	// pooled
	// pooled
}
