package sandbox

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// runConfig is what an image says about running it, merged with New's
// options: the defaults every Cmd starts from.
type runConfig struct {
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
}

// runConfigOf takes the run settings of an OCI image config.
func runConfigOf(cf *v1.ConfigFile) runConfig {
	if cf == nil {
		return runConfig{}
	}
	c := cf.Config
	return runConfig{
		Env:        append([]string(nil), c.Env...),
		Entrypoint: append([]string(nil), c.Entrypoint...),
		Cmd:        append([]string(nil), c.Cmd...),
		WorkingDir: c.WorkingDir,
		User:       c.User,
	}
}

// withOptions applies New's options over the image's settings.
func (c runConfig) withOptions(o *newOptions) runConfig {
	c.Env = mergeEnv(c.Env, o.env)
	if o.user != "" {
		c.User = o.user
	}
	if o.workDir != "" {
		c.WorkingDir = o.workDir
	}
	if c.WorkingDir == "" {
		c.WorkingDir = "/"
	}
	return c
}

// mergeEnv returns base with over applied: a key in over replaces the same
// key in base, in place; new keys are appended.
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				out[i] = kv
				replaced = true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}
