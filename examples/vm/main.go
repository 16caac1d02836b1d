// Command vm runs a command in a sandbox that is its own virtual machine:
// the VM backend boots a Linux kernel in QEMU (KVM where /dev/kvm works,
// QEMU's emulation otherwise, which takes seconds) and shows that the
// sandbox's kernel is not the host's.
//
//	go run ./examples/vm
//
// It needs qemu-system-x86_64, mkfs.ext4 and a guest kernel:
// scripts/ensure-vm-deps.sh installs them on Debian. Without them, New
// fails with an error matching sandbox.ErrHypervisorUnavailable that says
// what is missing.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ccsandbox/sandbox"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	inst, err := sandbox.New(ctx, sandbox.HostImage(), sandbox.WithBackend(sandbox.BackendVM), sandbox.WithMemoryMB(512))
	if errors.Is(err, sandbox.ErrHypervisorUnavailable) {
		log.Fatalf("this host cannot run VM sandboxes: %v", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	fmt.Printf("booted in %v\n", time.Since(start).Round(time.Millisecond))

	out, err := inst.Command("uname", "-sr").Output()
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("guest kernel: %shost kernel:  Linux %s", out, host)

	if err := inst.WriteFile("/tmp/hello.txt", []byte("written from the host\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	out, err = inst.Command("cat", "/tmp/hello.txt").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("inside: %s", out)
}
