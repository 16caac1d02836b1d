package sandbox

import "strings"

// Environ returns a copy of the environment the command would run with as
// it is configured now, as exec.Cmd.Environ does: Env when it is set, else
// the image's environment with New's WithEnv applied and PWD=Dir when Dir
// is set; of duplicate keys the last wins. Entries holding a NUL byte,
// which Start refuses, are left out. To add variables to the default
// environment, set Env to append(cmd.Environ(), "K=V").
func (c *Cmd) Environ() []string {
	env := c.Env
	if env == nil {
		if c.inst == nil {
			return nil
		}
		env = append([]string(nil), c.inst.defaults.Env...)
		if c.Dir != "" {
			env = append(env, "PWD="+c.Dir)
		}
	}
	clean := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.ContainsRune(kv, 0) {
			clean = append(clean, kv)
		}
	}
	out, _ := dedupEnv(clean) // no NUL is left to refuse
	return out
}
