package dockerfile

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/ccsandbox/sandbox/internal/netutil"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// mountSet is the host side of a RUN step's mounts while it runs.
type mountSet struct {
	binds []Bind
	env   []string // secrets given as variables, SSH_AUTH_SOCK
	undo  []func()
}

// close releases what the mounts held, the last made first.
func (ms *mountSet) close() {
	for i := len(ms.undo) - 1; i >= 0; i-- {
		ms.undo[i]()
	}
	ms.undo = nil
}

// prepareMounts makes the host files of mounts: copies for binds, cache
// directories, scratch directories for tmpfs, secret files and agent
// sockets. env is the step's environment, for SSH_AUTH_SOCK.
func (s *state) prepareMounts(mounts []*runMount, env []string) (ms *mountSet, err error) {
	ms = &mountSet{}
	defer func() {
		if err != nil {
			ms.close()
		}
	}()
	sshSock := ""
	for _, rm := range mounts {
		if rm.skip {
			continue
		}
		var b Bind
		switch rm.m.Type {
		case instructions.MountTypeBind:
			b, err = s.bindMount(ms, rm)
		case instructions.MountTypeCache:
			b, err = s.cacheMount(ms, rm)
		case instructions.MountTypeTmpfs:
			b, err = s.tmpfsMount(ms, rm)
		case instructions.MountTypeSecret:
			b, err = s.secretMount(ms, rm)
		case instructions.MountTypeSSH:
			b, err = s.sshMount(ms, rm)
			if sshSock == "" {
				sshSock = rm.target
			}
		default:
			err = fmt.Errorf("--mount=type=%s is not supported", rm.m.Type)
		}
		if err != nil {
			return nil, err
		}
		if b.Source != "" {
			ms.binds = append(ms.binds, b)
		}
	}
	if sshSock != "" && !hasEnv(env, "SSH_AUTH_SOCK") {
		ms.env = append(ms.env, "SSH_AUTH_SOCK="+sshSock)
	}
	// Parents first: a mount inside another's target must come after it.
	sortBinds(ms.binds)
	return ms, nil
}

// bindMount copies a bind's source into a directory of the store that
// the step sees, read-only unless rw (and then its writes are dropped).
func (s *state) bindMount(ms *mountSet, rm *runMount) (Bind, error) {
	dir, remove, err := s.b.exec.TempDir(s.b.ctx)
	if err != nil {
		return Bind{}, err
	}
	ms.undo = append(ms.undo, remove)
	root := filepath.Join(dir, "m")
	if err := s.copyTree(root, rm.src, rm.srcRel, rm.srcContext); err != nil {
		return Bind{}, err
	}
	host := root
	if !rm.srcIsDir {
		host = filepath.Join(root, "f")
	}
	return Bind{Source: host, Target: rm.target, Writable: !rm.m.ReadOnly}, nil
}

// copyTree writes the entry rel of src (a directory's tree, or a file as
// root/f) into root, owned as the store owns files.
func (s *state) copyTree(root string, src srcFS, rel string, fromContext bool) error {
	w, err := newLayerWriter(root, s.b.exec.IDs(), newLayerFS(nil, s.b.exec.IDs()))
	if err != nil {
		return err
	}
	defer w.close()
	dest := ""
	if e, err := src.lstat(rel); err != nil {
		return err
	} else if !e.mode.IsDir() {
		dest = "f"
	}
	if err := s.copyEntry(w, src, rel, dest, nil, nil, fromContext, nil, ""); err != nil {
		return err
	}
	return w.finish()
}

// cacheMount returns the store's directory for a cache mount, made on
// first use with the mount's mode and owner (or the files of from), and
// held as its sharing says until the step ends. A source without from
// names a cache of its own rather than a directory inside the cache, so
// that no path is resolved in a tree the sandboxes write.
func (s *state) cacheMount(ms *mountSet, rm *runMount) (Bind, error) {
	id := rm.id
	if rm.m.From == "" && rm.m.Source != "" {
		id += "\x00" + cleanRel(rm.m.Source)
	}
	init := func(dir string) error {
		if rm.src != nil {
			if err := s.copyTree(dir, rm.src, rm.srcRel, rm.srcContext); err != nil {
				return err
			}
			if rm.m.Mode == nil && rm.m.UID == nil && rm.m.GID == nil {
				return nil
			}
		}
		mode, uid, gid := mountFileMeta(rm.m, 0o755)
		if err := chmodHost(dir, mode); err != nil {
			return err
		}
		return s.chownHost(dir, uid, gid)
	}
	dir, release, err := s.b.exec.CacheMount(s.b.ctx, id, rm.sharing, init)
	if err != nil {
		return Bind{}, fmt.Errorf("cache mount %s: %w", rm.target, err)
	}
	ms.undo = append(ms.undo, release)
	return Bind{Source: dir, Target: rm.target, Writable: !rm.m.ReadOnly}, nil
}

// tmpfsMount makes an empty directory in host memory for the step,
// removed after it.
func (s *state) tmpfsMount(ms *mountSet, rm *runMount) (Bind, error) {
	dir, remove, err := privateDir("tmpfs-")
	if err != nil {
		return Bind{}, err
	}
	ms.undo = append(ms.undo, remove)
	t := filepath.Join(dir, "t")
	if err := os.Mkdir(t, 0o700); err != nil {
		return Bind{}, err
	}
	if err := chmodHost(t, 0o777|fs.ModeSticky); err != nil {
		return Bind{}, err
	}
	if err := s.chownHost(t, 0, 0); err != nil {
		return Bind{}, err
	}
	return Bind{Source: t, Target: rm.target, Writable: !rm.m.ReadOnly}, nil
}

// secretMount gives a secret to the step: as a variable (env=), and as a
// read-only file in host memory at its target, removed after the step.
// Errors never hold the value.
func (s *state) secretMount(ms *mountSet, rm *runMount) (Bind, error) {
	sec := s.b.opts.Secrets[rm.id]
	value := sec.Value
	if value == nil {
		var err error
		if value, err = os.ReadFile(sec.File); err != nil {
			return Bind{}, fmt.Errorf("secret %q: %w", rm.id, err)
		}
	}
	if rm.m.Env != nil {
		name := *rm.m.Env
		if name == "" {
			name = rm.id
		}
		ms.env = append(ms.env, name+"="+string(value))
	}
	if rm.target == "" {
		return Bind{}, nil
	}
	dir, remove, err := privateDir("secret-")
	if err != nil {
		return Bind{}, err
	}
	ms.undo = append(ms.undo, remove)
	p := filepath.Join(dir, "secret")
	if err := os.WriteFile(p, value, 0o600); err != nil {
		return Bind{}, fmt.Errorf("secret %q: %w", rm.id, err)
	}
	mode, uid, gid := mountFileMeta(rm.m, 0o400)
	if err := chmodHost(p, mode); err != nil {
		return Bind{}, err
	}
	if err := s.chownHost(p, uid, gid); err != nil {
		return Bind{}, err
	}
	return Bind{Source: p, Target: rm.target}, nil
}

// sshMount forwards an ssh agent: a socket of its own, at the target,
// whose connections it relays to the agent's socket on the host.
func (s *state) sshMount(ms *mountSet, rm *runMount) (Bind, error) {
	dir, remove, err := privateDir("ssh-")
	if err != nil {
		return Bind{}, err
	}
	ms.undo = append(ms.undo, remove)
	p := filepath.Join(dir, "agent.sock")
	px, err := startRelay(p, s.b.opts.SSH[rm.id])
	if err != nil {
		return Bind{}, fmt.Errorf("ssh agent %q: %w", rm.id, err)
	}
	ms.undo = append(ms.undo, px.close)
	mode, uid, gid := mountFileMeta(rm.m, 0o600)
	if err := chmodHost(p, mode); err != nil {
		return Bind{}, err
	}
	if err := s.chownHost(p, uid, gid); err != nil {
		return Bind{}, err
	}
	return Bind{Source: p, Target: rm.target}, nil
}

// relay accepts connections on a Unix socket and splices each to a
// connection to another.
type relay struct {
	ln    net.Listener
	dest  string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool // guarded by mu; nil once closed
}

func startRelay(path, dest string) (*relay, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, dest: dest, conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("unix", r.dest)
		if err != nil || !r.track(c, up) {
			c.Close()
			if up != nil {
				up.Close()
			}
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			netutil.Splice(c, up)
			r.mu.Lock()
			delete(r.conns, c)
			delete(r.conns, up)
			r.mu.Unlock()
		}()
	}
}

// track registers a relayed pair; false once the relay is closed.
func (r *relay) track(a, b net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	r.conns[a], r.conns[b] = true, true
	return true
}

// close stops accepting, ends every relayed connection and waits.
func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}

// hasEnv reports whether env sets key.
func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return true
		}
	}
	return false
}

// sortBinds orders binds so that each comes after those whose target
// holds its own.
func sortBinds(binds []Bind) {
	depth := func(p string) int {
		n := 0
		for _, c := range p {
			if c == '/' {
				n++
			}
		}
		return n
	}
	for i := 1; i < len(binds); i++ {
		for j := i; j > 0 && depth(binds[j].Target) < depth(binds[j-1].Target); j-- {
			binds[j], binds[j-1] = binds[j-1], binds[j]
		}
	}
}
