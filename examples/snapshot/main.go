// Command snapshot freezes a sandbox's files and forks two sandboxes from
// the snapshot: each starts where the original stood, and neither sees
// the other's writes. The snapshot can be reopened by its key, from this
// process or any other using the same cache directory.
//
//	go run ./examples/snapshot
package main

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/ccsandbox/sandbox"
)

func main() {
	ctx := context.Background()

	// 1. Prepare a sandbox: some state worth keeping.
	inst, err := sandbox.New(ctx, sandbox.HostImage())
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	must(inst.MkdirAll("/work", 0o755))
	must(inst.WriteFile("/work/counter", []byte("1\n"), 0o644))
	must(inst.WriteFile("/work/scratch.log", []byte("noise\n"), 0o644))

	// 2. Snapshot it, leaving the log out. The sandbox keeps running.
	snap, err := inst.Snapshot(ctx, sandbox.WithExcludes("*.log"))
	if err != nil {
		log.Fatal(err)
	}
	defer snap.Close()
	fmt.Printf("snapshot %.12s taken (parent %.12s), /work/counter is 1 and *.log left out\n", snap.CacheKey(), snap.Parent())

	// 3. Fork: two sandboxes from the same snapshot, each changing it.
	for _, name := range []string{"a", "b"} {
		fork, err := sandbox.New(ctx, snap)
		if err != nil {
			log.Fatal(err)
		}
		out, err := fork.Command("sh", "-c", "echo "+name+" >> /work/counter; echo $(cat /work/counter); echo $(ls /work)").Output()
		fork.Close()
		if err != nil {
			log.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		fmt.Printf("fork %s appended %q: /work/counter holds %q, /work lists %q\n", name, name, lines[0], lines[1])
	}

	// 4. Reopen the snapshot by its key, as another process would.
	again, err := sandbox.OpenSnapshot(ctx, snap.CacheKey())
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close()
	fresh, err := sandbox.New(ctx, again)
	if err != nil {
		log.Fatal(err)
	}
	defer fresh.Close()
	b, err := fresh.ReadFile("/work/counter")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("reopened by key, the counter is still: %s", b)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
