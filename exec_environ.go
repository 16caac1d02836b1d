package sandbox

import (
	"errors"
	"strings"
)

// Environ returns a copy of the environment the command would run with as
// it is configured now, as exec.Cmd.Environ does: Env when it is set, else
// the image's environment with New's WithEnv applied and PWD=Dir when Dir
// is set; of duplicate keys the last wins. Entries holding a NUL byte,
// which Start refuses, are left out. To add variables to the default
// environment, set Env to append(cmd.Environ(), "K=V").
func (c *Cmd) Environ() []string {
	env := c.baseEnv()
	if env == nil {
		return nil
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

// environ returns the environment of the process, as exec.Cmd computes it.
func (c *Cmd) environ() ([]string, error) {
	return dedupEnv(c.baseEnv())
}

// baseEnv is Env, or when it is nil the default environment: the image's
// with New's WithEnv applied, and PWD=Dir when Dir is set.
func (c *Cmd) baseEnv() []string {
	if c.Env != nil || c.inst == nil {
		return c.Env
	}
	env := append([]string(nil), c.inst.defaults.Env...)
	if c.Dir != "" {
		env = append(env, "PWD="+c.Dir)
	}
	return env
}

// dedupEnv removes duplicate keys (the last wins, in the position of its
// last occurrence) and refuses NUL bytes, as exec.Cmd does.
func dedupEnv(env []string) ([]string, error) {
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env))
	for j := len(env) - 1; j >= 0; j-- {
		kv := env[j]
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, errors.New("exec: environment variable contains NUL")
		}
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			k = kv // keep malformed entries, as exec does
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, kv)
	}
	for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
		out[a], out[b] = out[b], out[a]
	}
	return out, nil
}
