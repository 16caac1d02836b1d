package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// rootless runs test binaries as the unprivileged user: as root, su to
// that user (created if needed); as any other user, that user itself.
type rootless struct {
	user     string // "" when not root: run as ourselves
	uid, gid int
	home     string // HOME and XDG_CACHE_HOME's parent: the user's cache is a fresh one
	module   string // the checkout
	copy     string // a copy of it the user can read, or ""
}

// setupRootless prepares rootless runs: the user, a home directory in the
// work directory, and a copy of the checkout when the user cannot reach
// it (one in a private temporary directory, say).
func setupRootless(ctx context.Context, name, work string, b *built) (*rootless, error) {
	r := &rootless{module: b.module, home: filepath.Join(work, "home")}
	if err := os.MkdirAll(r.home, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return r, nil
	}
	r.user = name
	if _, err := user.Lookup(name); err != nil {
		say("creating the user %s for the rootless phases (useradd)", name)
		if err := command(ctx, "useradd", "--no-create-home", "--shell", "/bin/sh", name); err != nil {
			return nil, err
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	r.uid, _ = strconv.Atoi(u.Uid)
	r.gid, _ = strconv.Atoi(u.Gid)
	if err := os.Chown(r.home, r.uid, r.gid); err != nil {
		return nil, err
	}
	if exec.CommandContext(ctx, "su", name, "-s", "/bin/sh", "-c", "cd "+quote(b.module)).Run() != nil {
		r.copy = filepath.Join(work, "src")
		say("%s cannot reach %s: the rootless phases test a copy of its files in %s", name, b.module, r.copy)
		if err := copyCheckout(ctx, b.module, r.copy); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// copyCheckout copies the files git knows of (or every file, outside git)
// to dst, readable by all.
func copyCheckout(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	script := `cd "$1" && if git rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files -z | xargs -0 cp --parents -t "$2"
else
	tar -cf - --exclude=./.git . | tar -xf - -C "$2"
fi && chmod -R a+rX "$2"`
	return command(ctx, "sh", "-c", script, "sh", src, dst)
}

// command returns the command that runs args in dir (a package directory
// of the checkout) as the user, with env.
func (r *rootless) command(ctx context.Context, dir string, env, args []string) (*exec.Cmd, error) {
	if r.copy != "" {
		rel, err := filepath.Rel(r.module, dir)
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(r.copy, rel)
	}
	env = append([]string{"HOME=" + r.home, "XDG_CACHE_HOME=" + filepath.Join(r.home, ".cache")}, env...)
	if r.user == "" {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		return cmd, nil
	}
	var sh strings.Builder
	fmt.Fprintf(&sh, "cd %s && exec env", quote(dir))
	for _, w := range append(env, args...) {
		sh.WriteString(" " + quote(w))
	}
	return exec.CommandContext(ctx, "su", r.user, "-s", "/bin/sh", "-c", sh.String()), nil
}

// quote quotes s for sh.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
