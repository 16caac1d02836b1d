package sandbox

import (
	"slices"
	"testing"
)

// TestCmdEnviron checks that Environ returns the environment Start would
// give, and that appending to it adds to the default environment.
func TestCmdEnviron(t *testing.T) {
	inst := hostInstance(t, WithEnv("A=1", "A=2"))
	c := inst.Command("sh", "-c", "echo $A $B $PWD")
	c.Dir = "/tmp"
	env := c.Environ()
	if !slices.Contains(env, "A=2") || slices.Contains(env, "A=1") || !slices.Contains(env, "PWD=/tmp") {
		t.Errorf("Environ = %q, want A=2 (once) and PWD=/tmp", env)
	}
	c.Env = append(env, "B=3")
	out, err := c.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "2 3 /tmp\n" {
		t.Errorf("the command printed %q, want %q", out, "2 3 /tmp\n")
	}

	c = inst.Command("true")
	c.Env = []string{"X=1", "BAD=a\x00b", "X=2"}
	if env := c.Environ(); !slices.Equal(env, []string{"X=2"}) {
		t.Errorf("Environ of an Env with a duplicate and a NUL = %q, want [X=2]", env)
	}
	var nilInst *Instance
	if env := nilInst.Command("true").Environ(); env != nil {
		t.Errorf("Environ of a Cmd without an Instance = %q, want nil", env)
	}
}
