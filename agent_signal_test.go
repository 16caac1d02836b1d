package sandbox

import (
	"fmt"
	"testing"
)

// TestAgentSurvivesSignals: code in the sandbox signals its PID 1, the
// agent, with every signal a process may send (as the sandbox's root,
// and as another user), and the agent goes on serving: commands and file
// calls work after each, so a workload cannot turn the caller's next call
// into an obscure transport error.
func TestAgentSurvivesSignals(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			for _, user := range []string{"", "1000"} {
				for _, sig := range []string{"TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2", "PIPE", "ALRM", "ABRT", "SEGV", "BUS", "STOP", "TSTP", "TTIN", "TTOU", "SYS", "TRAP", "XCPU", "XFSZ", "VTALRM", "PROF", "URG", "WINCH", "CHLD", "CONT"} {
					cmd := inst.Command("sh", "-c", fmt.Sprintf("kill -%s 1; kill -%s -1; true", sig, sig))
					cmd.User = user
					cmd.Run() // kill -1 reaches the shell itself too
					if out, err := inst.Command("echo", "alive").Output(); err != nil || string(out) != "alive\n" {
						t.Fatalf("after kill -%s 1 as %q: %q %v (sandbox: %v)", sig, user, out, err, inst.Err())
					}
					if _, err := inst.ReadFile("/etc/hostname"); err != nil {
						t.Fatalf("a file call after kill -%s 1 as %q: %v", sig, user, err)
					}
				}
			}
			// The agent catches what it drops, so its commands still die
			// of the signals' default actions.
			out, err := inst.Command("sh", "-c", "sleep 100 & kill -TERM $!; wait $!; echo $?").Output()
			if err != nil || string(out) != "143\n" {
				t.Errorf("a command's child killed by SIGTERM: %q %v, want status 143", out, err)
			}
		})
	}
}
