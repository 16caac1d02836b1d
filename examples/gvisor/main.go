// Command gvisor runs untrusted-looking code in a sandbox on gVisor's
// user-space kernel: the workload's system calls are served by gVisor, not
// by the host kernel, and no virtualisation is needed.
//
//	CGO_ENABLED=0 go run ./examples/gvisor
//
// Importing github.com/ccsandbox/sandbox/gvisor links runsc into this
// program, which re-executes itself in runsc's role: nothing to install.
// runsc moves into an empty root before it re-executes itself, so the
// program must be linked statically (CGO_ENABLED=0); New says so
// otherwise. With CC_RUNSC set to a static runsc, or one on $PATH, that
// runsc is used instead.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox"
	_ "github.com/ccsandbox/sandbox/gvisor"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	inst, err := sandbox.New(ctx, sandbox.HostImage(), sandbox.WithBackend(sandbox.BackendGVisor))
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	fmt.Printf("started in %v\n", time.Since(start).Round(time.Millisecond))

	out, err := inst.Command("uname", "-sr").Output()
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("sandbox kernel: %shost kernel:    Linux %s", out, host)

	// The host's processes are not there: the sandbox lists its own.
	out, err = inst.Command("sh", "-c", "ls /proc | grep -c '^[0-9]'").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("processes visible inside: %s", out)

	if err := inst.WriteFile("/tmp/hello.txt", []byte("written from the host\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	out, err = inst.Command("cat", "/tmp/hello.txt").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read inside: %s", strings.TrimSpace(string(out))+"\n")
}
