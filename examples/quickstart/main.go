// Command quickstart starts a real sandbox and uses it: it runs commands,
// writes a file in, reads files out, and closes the sandbox. It needs no
// network and no image download: the sandbox runs the host's own programs
// (sandbox.HostImage) in an isolated root.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
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

	out, err := inst.Command("sh", "-c", "echo hello from $(hostname); id; ls /proc | grep -c '^[0-9]'").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("inside:\n%s", out)

	if err := inst.WriteFile("/tmp/in.txt", []byte("written from the host\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	out, err = inst.Command("cat", "/tmp/in.txt").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("cat /tmp/in.txt: %s", out)

	passwd, err := fs.ReadFile(inst, "etc/passwd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the sandbox's /etc/passwd:\n%s", passwd)

	// This program's own binary is a host file: the sandbox cannot see it.
	exe, _ := os.Executable()
	if _, err := inst.Stat(exe); err != nil {
		fmt.Printf("host files are out of reach: %v\n", err)
	}
}
