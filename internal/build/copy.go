package build

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// copyArgs is a COPY or an ADD, expanded.
type copyArgs struct {
	add      bool // ADD: archives are extracted (when unpack)
	unpack   bool
	sd       instructions.SourcesAndDest
	from     string
	chown    string
	chmod    string
	excludes []string
	parents  bool
	text     string // the instruction as written
}

// opKind is what one source of a COPY does.
type opKind int

const (
	opEntry   opKind = iota // a file or symlink, copied to dest
	opTree                  // a directory, whose contents are copied into dest
	opArchive               // a tar archive (ADD), extracted into dest
	opData                  // a heredoc, written to dest
)

// copyOp is one source of a COPY with where it goes.
type copyOp struct {
	kind opKind
	rel  string // the source, resolved, in the source filesystem
	e    *entry
	name string // the source's base name as matched
	data []byte // opData
	dest string // where it goes in the new layer (relative, resolved)
}

// copy runs a COPY or ADD: the files go into a new layer prepared on
// the host, with no sandbox.
func (s *state) copy(a copyArgs) error {
	kind := "COPY"
	if a.add {
		kind = "ADD"
	}
	if a.parents {
		return fmt.Errorf("%s --parents is not supported by this builder", kind)
	}
	if len(a.excludes) > 0 {
		return fmt.Errorf("%s --exclude is not supported by this builder", kind)
	}
	for _, src := range a.sd.SourcePaths {
		if isRemote(src) {
			if !a.add {
				return fmt.Errorf("source %q: COPY cannot read URLs", src)
			}
			return fmt.Errorf("ADD %s: builds have no network access to fetch a URL: download it into the build context and ADD it from there", src)
		}
	}
	raw := shell.NewLex('\\')
	raw.SkipProcessQuotes = true
	for i, c := range a.sd.SourceContents {
		if c.Expand {
			w, _, err := raw.ProcessWord(c.Data, envGetter(s.args, s.cfg.Config.Env))
			if err != nil {
				return err
			}
			a.sd.SourceContents[i].Data = w
		}
	}
	var mode *fs.FileMode
	if a.chmod != "" {
		n, err := strconv.ParseUint(a.chmod, 8, 32)
		if err != nil || n > 0o7777 {
			return fmt.Errorf("invalid chmod parameter: %q: it should be an octal number between 0 and 07777", a.chmod)
		}
		m := fs.FileMode(n & 0o777)
		if n&0o4000 != 0 {
			m |= fs.ModeSetuid
		}
		if n&0o2000 != 0 {
			m |= fs.ModeSetgid
		}
		if n&0o1000 != 0 {
			m |= fs.ModeSticky
		}
		mode = &m
	}
	var own *owner
	if a.chown != "" {
		o, err := resolveChown(a.chown, s.files())
		if err != nil {
			return err
		}
		own = &o
	}
	var src srcFS = s.b.ctxFS
	srcKey, fromContext := "", true
	if a.from != "" {
		ref, _, err := s.b.stageRef(a.from, s.st)
		if err != nil {
			return err
		}
		src, srcKey, fromContext = newLayerFS(ref.Layers(), s.b.exec.IDs()), ref.Key(), false
	}
	ops, err := s.copyPlan(a, src)
	if err != nil {
		return err
	}

	ownKey, modeKey := "", ""
	if own != nil {
		ownKey = strconv.Itoa(own.uid) + ":" + strconv.Itoa(own.gid)
	}
	if mode != nil {
		modeKey = strconv.FormatUint(uint64(*mode), 8)
	}
	k := newHasher(kind).add(s.key, srcKey, ownKey, modeKey, strconv.FormatBool(a.unpack))
	for _, op := range ops {
		k.add(strconv.Itoa(int(op.kind)), op.rel, op.name, op.dest).addBytes(op.data)
		if fromContext && op.kind != opData {
			if err := hashTree(k, src, op.rel); err != nil {
				return err
			}
		}
	}
	shown := append([]string(nil), a.sd.SourcePaths...)
	for _, c := range a.sd.SourceContents {
		shown = append(shown, "<<"+c.Path)
	}
	flags := ""
	if a.from != "" {
		flags += " --from=" + a.from
	}
	if a.chown != "" {
		flags += " --chown=" + a.chown
	}
	if a.chmod != "" {
		flags += " --chmod=" + a.chmod
	}
	instr := kind + flags + " " + strings.Join(shown, " ") + " " + a.sd.DestPath
	return s.fsStep(instr, k.sum(), instr+" # buildkit", func() (Ref, error) {
		return s.commit(func(w *layerWriter, tmp string) error {
			for i, op := range ops {
				if err := s.writeOp(w, src, op, own, mode, fromContext, path.Join(tmp, fmt.Sprintf("x%d", i))); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// isRemote reports whether an ADD source is a URL or a git repository.
func isRemote(src string) bool {
	for _, p := range []string{"http://", "https://", "git://", "git@", "ssh://"} {
		if strings.HasPrefix(src, p) {
			return true
		}
	}
	return false
}

// copyPlan works out what each source is and where it goes.
func (s *state) copyPlan(a copyArgs, src srcFS) ([]copyOp, error) {
	raw := a.sd.DestPath
	destDir := raw == "" || raw == "." || raw == ".." || strings.HasSuffix(raw, "/") || strings.HasSuffix(raw, "/.") || strings.HasSuffix(raw, "/..")
	dest := raw
	if !path.IsAbs(dest) {
		wd := s.cfg.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		dest = path.Join(wd, dest)
	}
	destRel := cleanRel(dest)
	base := s.files()
	if !destDir {
		if r, err := resolve(base, destRel, true); err == nil {
			if e, err := base.lstat(r); err == nil && e.mode.IsDir() {
				destDir = true
			}
		}
	}

	var ops []copyOp
	for _, p := range a.sd.SourcePaths {
		matches, err := glob(src, p)
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 && !hasMeta(p) {
			return nil, fmt.Errorf("source %q: not found in %s", p, where(a))
		}
		for _, m := range matches {
			e, err := src.lstat(m.rel)
			if err != nil {
				return nil, err
			}
			op := copyOp{kind: opEntry, rel: m.rel, e: e, name: m.name}
			switch {
			case e.mode.IsDir():
				op.kind = opTree
			case a.add && a.unpack && e.mode.IsRegular():
				_, closeFn, ok, err := openArchive(e.host)
				if err != nil {
					return nil, err
				}
				if ok {
					closeFn()
					op.kind = opArchive
				}
			}
			ops = append(ops, op)
		}
	}
	for _, c := range a.sd.SourceContents {
		ops = append(ops, copyOp{kind: opData, name: c.Path, data: []byte(c.Data)})
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("no source files were specified (the patterns match nothing in %s)", where(a))
	}
	if len(ops) > 1 && !destDir {
		return nil, fmt.Errorf("when copying more than one source file, the destination must be a directory and end with a /")
	}
	for i := range ops {
		op := &ops[i]
		var err error
		switch {
		case op.kind == opTree || op.kind == opArchive:
			op.dest, err = resolve(base, destRel, true)
		case destDir:
			op.dest, err = resolveParent(base, joinRel(destRel, op.name))
		default:
			op.dest, err = resolveParent(base, destRel)
		}
		if err != nil {
			return nil, err
		}
		if op.dest == "" && op.kind != opTree && op.kind != opArchive {
			return nil, fmt.Errorf("cannot copy a file onto the root directory")
		}
	}
	return ops, nil
}

// where names the source of a COPY in errors.
func where(a copyArgs) string {
	if a.from != "" {
		return fmt.Sprintf("%q", a.from)
	}
	return "the build context"
}

// resolveParent resolves the directory of rel, keeping its last element.
func resolveParent(fsys srcFS, rel string) (string, error) {
	if rel == "" {
		return "", nil
	}
	dir, err := resolve(fsys, parentRel(rel), true)
	if err != nil {
		return "", err
	}
	return joinRel(dir, path.Base(rel)), nil
}

// match is a source a pattern matched: its resolved path and the name it
// was matched by.
type match struct{ rel, name string }

// hasMeta reports whether a source is a pattern.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// glob returns the sources a COPY source names: itself, or what its
// pattern matches, element by element as path.Match matches.
func glob(fsys srcFS, pattern string) ([]match, error) {
	rel := cleanRel(pattern)
	if !hasMeta(rel) {
		r, err := resolve(fsys, rel, true)
		if err != nil {
			return nil, err
		}
		if _, err := fsys.lstat(r); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
		return []match{{rel: r, name: path.Base("/" + rel)}}, nil
	}
	cur := []string{""}
	for _, part := range splitRel(rel) {
		var next []string
		for _, c := range cur {
			dir, err := resolve(fsys, c, true)
			if err != nil {
				continue
			}
			if !hasMeta(part) {
				if _, err := fsys.lstat(joinRel(dir, part)); err == nil {
					next = append(next, joinRel(c, part))
				}
				continue
			}
			e, err := fsys.lstat(dir)
			if err != nil || !e.mode.IsDir() {
				continue
			}
			names, err := fsys.readDir(dir)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				ok, err := path.Match(part, n)
				if err != nil {
					return nil, fmt.Errorf("pattern %q: %w", pattern, err)
				}
				if ok {
					next = append(next, joinRel(c, n))
				}
			}
		}
		cur = next
	}
	var out []match
	for _, c := range cur {
		r, err := resolve(fsys, c, true)
		if err != nil {
			return nil, err
		}
		if _, err := fsys.lstat(r); err == nil {
			out = append(out, match{rel: r, name: path.Base("/" + c)})
		}
	}
	return out, nil
}

// hashTree adds the names, types, modes and contents of the tree at rel
// to a key.
func hashTree(k *hasher, fsys srcFS, rel string) error {
	e, err := fsys.lstat(rel)
	if err != nil {
		return err
	}
	return hashEntry(k, fsys, rel, ".", e)
}

func hashEntry(k *hasher, fsys srcFS, rel, name string, e *entry) error {
	k.add(name, strconv.FormatUint(uint64(e.mode), 8), strconv.Itoa(e.uid), strconv.Itoa(e.gid), e.link)
	switch {
	case e.mode.IsRegular():
		f, err := os.Open(e.host)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		k.addBytes(h.Sum(nil))
	case e.mode.IsDir():
		names, err := fsys.readDir(rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			ce, err := fsys.lstat(joinRel(rel, n))
			if err != nil {
				return err
			}
			if err := hashEntry(k, fsys, joinRel(rel, n), name+"/"+n, ce); err != nil {
				return err
			}
		}
		k.add("end of " + name)
	}
	return nil
}

// writeOp writes one source into the layer.
func (s *state) writeOp(w *layerWriter, src srcFS, op copyOp, own *owner, mode *fs.FileMode, fromContext bool, tmp string) error {
	newDir := dirMeta{mode: fs.ModeDir | 0o755}
	if own != nil {
		newDir.uid, newDir.gid = own.uid, own.gid
	}
	switch op.kind {
	case opData:
		if err := w.mkdirAll(parentRel(op.dest), newDir); err != nil {
			return err
		}
		m := fs.FileMode(0o644)
		if mode != nil {
			m = *mode
		}
		return w.file(op.dest, bytes.NewReader(op.data), m, newDir.uid, newDir.gid, time.Now())
	case opArchive:
		r, closeFn, ok, err := openArchive(op.e.host)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is no longer an archive", op.rel)
		}
		defer closeFn()
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return err
		}
		return w.extract(s.b.ctx, r, op.dest, tmp, newDir)
	case opTree:
		if err := w.mkdirAll(op.dest, newDir); err != nil {
			return err
		}
		names, err := src.readDir(op.rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := s.copyEntry(w, src, joinRel(op.rel, n), joinRel(op.dest, n), own, mode, fromContext); err != nil {
				return err
			}
		}
		return nil
	default:
		if err := w.mkdirAll(parentRel(op.dest), newDir); err != nil {
			return err
		}
		return s.copyEntry(w, src, op.rel, op.dest, own, mode, fromContext)
	}
}

// copyEntry copies the source entry rel, and what it holds, to dest.
func (s *state) copyEntry(w *layerWriter, src srcFS, rel, dest string, own *owner, mode *fs.FileMode, fromContext bool) error {
	if err := s.b.ctx.Err(); err != nil {
		return err
	}
	e, err := src.lstat(rel)
	if err != nil {
		return err
	}
	uid, gid := e.uid, e.gid
	if fromContext {
		uid, gid = 0, 0
	}
	if own != nil {
		uid, gid = own.uid, own.gid
	}
	m := e.mode
	if mode != nil {
		m = m.Type() | *mode
	}
	switch {
	case e.mode.IsDir():
		if err := w.dir(dest, dirMeta{mode: m, uid: uid, gid: gid, mtime: e.mtime}); err != nil {
			return err
		}
		names, err := src.readDir(rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := s.copyEntry(w, src, joinRel(rel, n), joinRel(dest, n), own, mode, fromContext); err != nil {
				return err
			}
		}
		return nil
	case e.mode.IsRegular():
		return w.copyFile(dest, e.host, m, uid, gid, e.mtime)
	case e.mode.Type() == fs.ModeSymlink:
		return w.symlink(dest, e.link, uid, gid, e.mtime)
	default:
		return nil // devices, fifos and sockets are not copied
	}
}
