package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The racing attacker of the security tests: a process inside the sandbox
// that exchanges two paths (renameat2 RENAME_EXCHANGE, atomic) as fast as
// it can while the host works on one of them, so that every check the host
// side makes before it acts meets the other file half the time.

// raceFor is how long a race runs.
const raceFor = 3 * time.Second

// exchange exchanges a and b until stop is closed and returns how many
// exchanges it made. A failed exchange (one of them gone a moment) is
// retried.
func exchange(a, b string, stop <-chan struct{}) int {
	n := 0
	for {
		select {
		case <-stop:
			return n
		default:
		}
		if unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) == nil {
			n++
		}
	}
}

// exchangerRole runs exchange with the arguments of the "exchange" child
// role (a, b and the duration) and prints how many exchanges it made.
func exchangerRole(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "exchange: want a, b and a duration")
		return 2
	}
	d, err := time.ParseDuration(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	stop := make(chan struct{})
	time.AfterFunc(d, func() { close(stop) })
	fmt.Println(exchange(args[0], args[1], stop))
	return 0
}

// startExchanger copies this test binary into inst and starts it there
// exchanging a and b for raceFor. Its Wait returns when it is done; the
// output says how many exchanges it made.
func startExchanger(t *testing.T, inst *Instance, a, b string) (*Cmd, *bytes.Buffer) {
	t.Helper()
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteFile("/exchanger", exe, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := inst.Command("/exchanger", a, b, raceFor.String())
	cmd.Env = []string{childRoleEnv + "=exchange"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// waitExchanger waits for an exchanger and logs how many exchanges it made.
func waitExchanger(t *testing.T, cmd *Cmd, out *bytes.Buffer) {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the exchanger: %v\n%s", err, out)
	}
	n, _ := strconv.Atoi(string(bytes.TrimSpace(out.Bytes())))
	t.Logf("the sandbox exchanged the paths %d times", n)
}
