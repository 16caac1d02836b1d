// Command pool serves "tool calls" the way an AI agent's runtime might:
// each call runs in a fresh sandbox that nothing ran in before, taken from
// a warm pool so the call does not wait for a sandbox to start, and closed
// when the call is done. It needs no network and no image download.
//
//	go run ./examples/pool
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ccsandbox/sandbox"
)

// calls are the untrusted commands to run, one sandbox each.
var calls = []string{
	"echo $((6 * 7))",
	"echo leftover > /tmp/state; ls /tmp",
	"ls /tmp | wc -l", // a fresh sandbox: the file above is not here
}

func main() {
	ctx := context.Background()
	start := time.Now()
	// Two sandboxes wait; each one handed out is replaced in the background.
	pool, err := sandbox.NewPool(ctx, sandbox.HostImage(), 2, sandbox.WithTimeout(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	fmt.Printf("pool ready in %v\n", time.Since(start).Round(time.Microsecond))

	for _, call := range calls {
		if err := serve(ctx, pool, call); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%d tool calls ran, each in a fresh sandbox\n", len(calls))
}

// serve runs one call in a sandbox of its own and closes it.
func serve(ctx context.Context, pool *sandbox.Pool, call string) error {
	t := time.Now()
	inst, err := pool.New(ctx)
	if err != nil {
		return err
	}
	defer inst.Close()
	got := time.Since(t)
	out, err := inst.Command("sh", "-c", call).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", call, err, out)
	}
	fmt.Printf("sandbox %s (handed out in %v): %s\n  %s", inst.ID(), got.Round(time.Microsecond), call, out)
	return nil
}
