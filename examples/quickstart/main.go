// Command quickstart starts a real sandbox and uses it: it runs commands,
// writes a file in, reads files out, and closes the sandbox. It needs no
// network and no image download: the sandbox runs the host's own programs
// (sandbox.HostImage) in an isolated root.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox"
)

func main() {
	ctx := context.Background()
	start := time.Now()
	inst, err := sandbox.New(ctx, sandbox.HostImage(), sandbox.WithHostname("quickstart"))
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	fmt.Printf("sandbox %s started in %v\n", inst.ID(), time.Since(start).Round(time.Microsecond))

	// One shell command inside: the sandbox's own hostname, user and
	// process table (its own PID namespace: none of the host's processes).
	out, err := inst.Command("sh", "-c", `echo "hello from $(hostname)"
echo "  user inside: $(id -un), uid $(id -u) (the sandbox's root, not the host's)"
echo "  processes it can see: $(ls /proc | grep -c '^[0-9]') (its agent and this command; none of the host's)"`).Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("a command inside printed:\n  %s", out)

	if err := inst.WriteFile("/tmp/in.txt", []byte("written from the host\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	out, err = inst.Command("cat", "/tmp/in.txt").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the host wrote /tmp/in.txt, cat inside reads: %s", out)

	passwd, err := fs.ReadFile(inst, "etc/passwd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the sandbox's /etc/passwd, read by the host through fs.ReadFile:")
	for line := range strings.Lines(string(passwd)) {
		fmt.Printf("  %s", line)
	}

	// This program's own binary is a host file: the sandbox cannot see it.
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	switch _, err := inst.Stat(exe); {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Println("this program's own file on the host does not exist inside the sandbox: host files are out of reach")
	case err != nil:
		log.Fatal(err)
	default:
		log.Fatalf("the sandbox sees this program's file %s", exe)
	}
}
