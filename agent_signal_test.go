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

// TestAgentLimitsNotSettable: code in the sandbox cannot lower the
// agent's resource limits with prlimit(2), which the kernel allows
// between processes of the same uids with no capability (a lowered hard
// limit is for good): by pid 1 or by one of the agent's thread ids, the
// call is refused, the agent's limits stay as they were and it goes on
// serving; a command still sets its own limits.
func TestAgentLimitsNotSettable(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			limits := func() string {
				t.Helper()
				out, err := inst.Command("grep", "-E", "open files|processes|cpu time", "/proc/1/limits").Output()
				if err != nil {
					t.Fatalf("the agent's limits: %v", err)
				}
				return string(out)
			}
			before := limits()
			for _, c := range []struct{ name, script string }{
				{"nofile", "prlimit --pid 1 --nofile=3:3"},
				{"nproc", "prlimit --pid 1 --nproc=1:1"},
				{"cpu", "prlimit --pid 1 --cpu=1:1"},
				// a thread's id reaches the same process
				{"nofile by a thread", "tid=$(ls /proc/1/task | grep -vx 1 | head -n1) && prlimit --pid $tid --nofile=3:3"},
			} {
				out, err := inst.Command("sh", "-c", c.script).CombinedOutput()
				if err == nil {
					t.Errorf("%s: %q succeeded: %s", c.name, c.script, out)
				}
				if after := limits(); after != before {
					t.Fatalf("%s: the agent's limits went from\n%s to\n%s", c.name, before, after)
				}
				if out, err := inst.Command("echo", "alive").Output(); err != nil || string(out) != "alive\n" {
					t.Fatalf("%s: a command after it: %q %v (sandbox: %v)", c.name, out, err, inst.Err())
				}
				if err := inst.WriteFile("/tmp/x", []byte("x"), 0o644); err != nil {
					t.Fatalf("%s: a file call after it: %v", c.name, err)
				}
			}
			out, err := inst.Command("sh", "-c", "prlimit --nofile=100:100 sh -c 'ulimit -n'").Output()
			if err != nil || string(out) != "100\n" {
				t.Errorf("a command setting its own limit: %q %v, want 100", out, err)
			}
		})
	}
}
