package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestInterruptSparesSandboxes: a terminal's ^C (SIGINT to the foreground
// process group) reaches the program, not its sandboxes: a program that
// handles SIGINT can still start sandboxes, run commands in them and close
// them. The child plays a program in a group of its own (as a shell runs
// one) that starts sandboxes one after another while the test sends SIGINT
// to that whole group, as the terminal sends it, until the child has seen
// 20 of them; an agent, QEMU, runsc's launcher or helper in the caller's
// group, even only until its setup is done, would die of one.
func TestInterruptSparesSandboxes(t *testing.T) {
	for _, mode := range []string{"local", "helper"} {
		t.Run(mode, func(t *testing.T) {
			child := childCommand(t, "interrupted")
			child.Args = append(child.Args, mode)
			child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			out, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			child.Stderr = os.Stderr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(out)
			line, _ := r.ReadString('\n')
			if line != "ready\n" {
				child.Process.Kill()
				child.Wait()
				t.Fatalf("child: %q", line)
			}
			// What the terminal does: the whole foreground group, again
			// and again while the child starts sandboxes.
			stop := make(chan struct{})
			sent := make(chan int)
			go func() {
				n := 0
				for {
					select {
					case <-stop:
						sent <- n
						return
					default:
					}
					if syscall.Kill(-child.Process.Pid, syscall.SIGINT) == nil {
						n++
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			var rest strings.Builder
			for {
				l, err := r.ReadString('\n')
				rest.WriteString(l)
				if err != nil {
					break
				}
			}
			close(stop)
			n := <-sent
			err = child.Wait()
			if err != nil || !strings.HasSuffix(rest.String(), "after the interrupts: alive\nclosed\n") {
				t.Fatalf("after %d SIGINTs to the program's group: %q (%v)", n, rest.String(), err)
			}
			t.Logf("%d SIGINTs sent; the child: %s", n, strings.SplitN(rest.String(), "\n", 2)[0])
		})
	}
}

// interrupted plays a program that handles ^C: it starts sandboxes one
// after another until it has started 10 and seen 20 interrupts, then
// runs one more command in its first sandbox and closes it.
func interrupted(mode string) int {
	if mode == "helper" {
		os.Setenv("CC_USE_HELPER", "1")
	}
	var seen atomic.Int64
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	go func() {
		for range sigs {
			seen.Add(1)
		}
	}()
	cache := WithCacheDir(os.Getenv("CC_CACHE_DIR"))
	inst, err := New(context.Background(), HostImage(), cache)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := inst.Command("true").Run(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	started := 0
	for started < 10 || seen.Load() < 20 {
		if started == 1000 {
			fmt.Println("error: 1000 sandboxes started and fewer than 20 interrupts seen")
			return 1
		}
		more, err := New(context.Background(), HostImage(), cache)
		if err == nil {
			err = more.Command("true").Run()
			more.Close()
		}
		if err != nil {
			fmt.Printf("error: sandbox %d, after %d interrupts: %v\n", started+1, seen.Load(), err)
			return 1
		}
		started++
	}
	fmt.Printf("started %d sandboxes through %d interrupts\n", started, seen.Load())
	out, err := inst.Command("echo", "alive").Output()
	fmt.Printf("after the interrupts: %s", out)
	if err != nil {
		fmt.Println("error:", err)
	}
	if err := inst.Close(); err != nil {
		fmt.Println("Close:", err)
		return 1
	}
	fmt.Println("closed")
	return 0
}
