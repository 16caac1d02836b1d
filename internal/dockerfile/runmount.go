package dockerfile

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// RUN --mount, with BuildKit's option names and defaults. What a mount
// holds never reaches a layer: the step's sandbox sees it at its target,
// and the snapshot of the step leaves out the directories and files its
// target made (RunSpec.Stubs). Keys take what the mount is (type, target,
// id, options) and, for a bind, the content it shows; never the content
// of a cache, a secret or a socket.

// runMount is one RUN --mount with its defaults applied.
type runMount struct {
	m       *instructions.Mount
	target  string // absolute and clean; "" for a secret given as env only
	id      string // cache, secret and ssh mounts
	sharing Sharing
	skip    bool // an optional secret or socket the build lacks: not mounted

	// bind, and cache with from: where the files come from.
	src        srcFS
	srcRel     string // resolved in src
	srcKey     string // the key of the stage or image, "" for the context
	srcIsDir   bool
	srcContext bool
}

// planMount applies BuildKit's defaults to m, a mount of a RUN whose
// working directory is wd; nssh counts the ssh mounts before it. It
// checks what needs no file: errors are the step's.
func planMount(m *instructions.Mount, wd string, nssh int, o *Options) (*runMount, error) {
	rm := &runMount{m: m, target: m.Target}
	if rm.target != "" && !path.IsAbs(rm.target) {
		rm.target = path.Join(wd, rm.target)
	}
	if rm.target != "" {
		rm.target = path.Clean(rm.target)
	}
	switch m.Type {
	case instructions.MountTypeBind, instructions.MountTypeCache, instructions.MountTypeTmpfs:
		if m.Target == "" {
			return nil, fmt.Errorf("--mount=type=%s needs a target", m.Type)
		}
	}
	if rm.target == "/" {
		return nil, fmt.Errorf("invalid mount target %q", m.Target)
	}
	switch m.Type {
	case instructions.MountTypeCache:
		rm.id = m.CacheID
		if rm.id == "" {
			rm.id = rm.target
		}
		rm.sharing = Sharing(m.CacheSharing)
		if rm.sharing == "" {
			rm.sharing = SharingShared
		}
	case instructions.MountTypeSecret:
		rm.id = m.CacheID
		if m.Source != "" {
			rm.id = m.Source
		}
		if rm.id == "" {
			rm.id = path.Base(rm.target)
		}
		if m.Env == nil && rm.target == "" {
			rm.target = "/run/secrets/" + path.Base(rm.id)
		}
		if _, ok := o.Secrets[rm.id]; !ok {
			if m.Required {
				return nil, fmt.Errorf("secret %q is required and the build has none of that id (WithBuildSecret or WithBuildSecretFile gives it)", rm.id)
			}
			rm.skip = true
		}
	case instructions.MountTypeSSH:
		if m.Source != "" {
			return nil, fmt.Errorf("--mount=type=ssh takes no source")
		}
		rm.id = m.CacheID
		if rm.id == "" {
			rm.id = "default"
		}
		if rm.target == "" {
			rm.target = "/run/buildkit/ssh_agent." + strconv.Itoa(nssh)
		}
		if _, ok := o.SSH[rm.id]; !ok {
			if m.Required {
				return nil, fmt.Errorf("ssh agent %q is required and the build has none of that id (WithBuildSSH gives it)", rm.id)
			}
			rm.skip = true
		}
	}
	return rm, nil
}

// mountKey is what a mount adds to its step's key.
func (rm *runMount) mountKey(k *hasher) error {
	m := rm.m
	opt := func(p *uint64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatUint(*p, 10)
	}
	k.add("mount", string(m.Type), rm.target, rm.id, string(rm.sharing), strconv.FormatBool(m.ReadOnly), m.Source,
		opt(m.Mode), opt(m.UID), opt(m.GID), strconv.FormatBool(rm.skip))
	if m.Env != nil {
		k.add("env", *m.Env)
	}
	if rm.src == nil {
		return nil
	}
	k.add("from", rm.srcKey, rm.srcRel)
	if rm.srcContext && m.Type == instructions.MountTypeBind {
		return hashTree(k, rm.src, rm.srcRel, nil, "")
	}
	return nil
}

// shown is the mount as the step's progress names it.
func (rm *runMount) shown() string {
	var b strings.Builder
	b.WriteString("--mount=type=" + string(rm.m.Type))
	if rm.id != "" && rm.m.Type != instructions.MountTypeCache || rm.m.CacheID != "" {
		b.WriteString(",id=" + rm.id)
	}
	if rm.m.From != "" {
		b.WriteString(",from=" + rm.m.From)
	}
	if rm.m.Source != "" && rm.m.Type != instructions.MountTypeSecret {
		b.WriteString(",source=" + rm.m.Source)
	}
	if rm.target != "" {
		b.WriteString(",target=" + rm.target)
	}
	if rm.m.Env != nil {
		b.WriteString(",env=" + *rm.m.Env)
	}
	return b.String()
}

// runMounts plans the mounts of a RUN and finds the files binds and
// seeded caches read.
func (s *state) runMounts(c *instructions.RunCommand) ([]*runMount, error) {
	wd := s.cfg.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	var out []*runMount
	nssh := 0
	for _, m := range instructions.GetMounts(c) {
		rm, err := planMount(m, wd, nssh, &s.b.opts)
		if err != nil {
			return nil, err
		}
		if m.Type == instructions.MountTypeSSH {
			nssh++
		}
		if m.Type == instructions.MountTypeTmpfs && m.SizeLimit > 0 {
			s.b.event(Event{Output: fmt.Sprintf("[Warning] RUN --mount=type=tmpfs,target=%s: size is not enforced here (the tmpfs is a scratch directory in host memory, removed after the step)", rm.target)})
		}
		if m.Type == instructions.MountTypeBind || m.Type == instructions.MountTypeCache && m.From != "" {
			if err := s.mountSource(rm); err != nil {
				return nil, err
			}
		}
		out = append(out, rm)
	}
	return out, nil
}

// mountSource finds the files a bind shows (or a cache starts with): its
// source in the context, or in the stage or image from names.
func (s *state) mountSource(rm *runMount) error {
	var src srcFS = s.b.ctxFS
	rm.srcContext = true
	if rm.m.From != "" {
		ref, _, err := s.b.stageRef(rm.m.From, s.st, s.platform)
		if err != nil {
			return err
		}
		src, rm.srcKey, rm.srcContext = newLayerFS(ref.Layers(), s.b.exec.IDs()), ref.Key(), false
	}
	rel, err := resolve(src, cleanRel(rm.m.Source), true)
	if err != nil {
		return err
	}
	e, err := src.lstat(rel)
	if err != nil {
		where := "the build context"
		if rm.m.From != "" {
			where = strconv.Quote(rm.m.From)
		}
		return fmt.Errorf("--mount source %q: not found in %s", "/"+cleanRel(rm.m.Source), where)
	}
	rm.src, rm.srcRel, rm.srcIsDir = src, rel, e.mode.IsDir()
	return nil
}

// mountStubs returns the paths the targets of mounts make in the stage's
// root, where it lacks them, deepest first.
func (s *state) mountStubs(mounts []*runMount) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, rm := range mounts {
		if rm.skip || rm.target == "" {
			continue
		}
		rel, err := resolve(s.files(), cleanRel(rm.target), true)
		if err != nil {
			return nil, fmt.Errorf("mount target %s: %w", rm.target, err)
		}
		rm.target = "/" + rel
		parts := splitRel(rel)
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			if _, err := s.files().lstat(p); err == nil {
				continue
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, "/"+p)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out, nil
}

// mountFileMeta is the mode and owner a secret, a socket or a cache
// directory gets: the mount's, or the defaults.
func mountFileMeta(m *instructions.Mount, mode fs.FileMode) (fs.FileMode, int, int) {
	uid, gid := 0, 0
	if m.Mode != nil {
		mode = octalMode(*m.Mode)
	}
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	return mode, uid, gid
}

// chownHost gives a host file the container owner uid:gid, as the
// sandbox's id map shows it. An unprivileged store has one id, root's,
// which the file has already.
func (s *state) chownHost(p string, uid, gid int) error {
	ids := s.b.exec.IDs()
	if ids.Single() {
		return nil
	}
	hu, hg := hostOwner(ids, uid, gid)
	if err := unix.Lchown(p, hu, hg); err != nil {
		return &fs.PathError{Op: "lchown", Path: p, Err: err}
	}
	return nil
}

// chmodHost sets a host file's permission bits, setuid and the like
// included.
func chmodHost(p string, mode fs.FileMode) error {
	if err := unix.Chmod(p, fsutil.UnixPerm(mode)); err != nil {
		return &fs.PathError{Op: "chmod", Path: p, Err: err}
	}
	return nil
}
