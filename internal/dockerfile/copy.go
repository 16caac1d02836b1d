package dockerfile

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// copyArgs is a COPY or an ADD, expanded.
type copyArgs struct {
	add       bool // ADD: archives are extracted (when unpack), URLs fetched
	unpack    bool
	unpackURL bool // --unpack=true: a fetched archive is extracted too
	sd        instructions.SourcesAndDest
	from      string
	chown     string
	chmod     string
	excludes  []string
	parents   bool
	link      bool
	checksum  string
	text      string // the instruction as written
}

// opKind is what one source of a COPY does.
type opKind int

const (
	opEntry   opKind = iota // a file or symlink, copied to dest
	opTree                  // a directory, whose contents are copied into dest
	opArchive               // a tar archive (ADD), extracted into dest
	opData                  // a heredoc, written to dest
	opRemote                // a URL (ADD), fetched to dest
)

// copyOp is one source of a COPY with where it goes.
type copyOp struct {
	kind   opKind
	rel    string // the source, resolved, in the source filesystem
	e      *entry
	name   string // the source's base name as matched
	keep   string // --parents: the source's path below the pivot, kept under dest
	data   []byte // opData
	remote *remoteFile
	dest   string // where it goes in the new layer (relative, resolved)
	into   string // ADD --unpack=true of a URL: where an archive it fetches goes
}

// matchPath is what --exclude patterns match an op's entries against:
// the path --parents keeps, or else the name of a file and nothing for
// a directory, whose contents are matched by their path inside it.
func (op *copyOp) matchPath() string {
	switch {
	case op.keep != "":
		return op.keep
	case op.kind == opTree:
		return ""
	}
	return op.name
}

// copy runs a COPY or ADD: the files go into a new layer prepared on
// the host, with no sandbox.
func (s *state) copy(a copyArgs) error {
	kind := "COPY"
	if a.add {
		kind = "ADD"
	}
	hasURL := false
	for _, src := range a.sd.SourcePaths {
		switch {
		case isGit(src):
			return errGit
		case isURL(src) && !a.add:
			return fmt.Errorf("source %q: COPY cannot read URLs (ADD can)", src)
		case isURL(src):
			hasURL = true
		}
	}
	if a.checksum != "" && !hasURL {
		return fmt.Errorf("ADD --checksum needs an http(s) URL source")
	}
	raw := shell.NewLex('\\')
	raw.SkipProcessQuotes = true
	for i, c := range a.sd.SourceContents {
		if c.Expand {
			w, err := processWord(raw, c.Data, envGetter(s.args, s.cfg.Config.Env))
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
		m := octalMode(n)
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
	var excl *ignoreRules
	if len(a.excludes) > 0 {
		var err error
		if excl, err = newIgnoreRules(a.excludes); err != nil {
			return fmt.Errorf("--exclude: %w", err)
		}
	}
	var src srcFS = s.b.ctxFS
	srcKey, fromContext := "", true
	if a.from != "" {
		ref, _, err := s.b.stageRef(a.from, s.st, s.platform)
		if err != nil {
			return err
		}
		src, srcKey, fromContext = newLayerFS(ref.Layers(), s.b.exec.IDs()), ref.Key(), false
	}
	tmp := ""
	if hasURL {
		dir, remove, err := s.b.exec.TempDir(s.b.ctx)
		if err != nil {
			return err
		}
		defer remove()
		tmp = dir
	}
	ops, destDir, err := s.copyPlan(a, src, excl)
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
	// A --link layer does not depend on the layers below: its own key
	// leaves the stage's out.
	k := newHasher(kind).add(s.key)
	var lk *hasher
	if a.link {
		lk = newHasher(kind + " --link").add(strconv.FormatBool(destDir))
		k.also = lk
	}
	k.add(srcKey, ownKey, modeKey, strconv.FormatBool(a.unpack))
	if a.parents || len(a.excludes) > 0 || a.unpackURL {
		k.add("parents", strconv.FormatBool(a.parents), "unpack-url", strconv.FormatBool(a.unpackURL), "exclude").add(a.excludes...)
	}
	for _, op := range ops {
		k.add(strconv.Itoa(int(op.kind)), op.rel, op.name, op.dest).addBytes(op.data)
		if op.keep != "" {
			k.add(op.keep)
		}
		switch {
		case op.kind == opRemote:
			part, err := s.remoteKey(op.remote, tmp)
			if err != nil {
				return err
			}
			k.add(part)
		case fromContext && op.kind != opData:
			if err := hashTree(k, src, op.rel, excl, op.matchPath()); err != nil {
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
	if a.link {
		flags += " --link"
	}
	if a.parents {
		flags += " --parents"
	}
	for _, e := range a.excludes {
		flags += " --exclude=" + e
	}
	if a.checksum != "" {
		flags += " --checksum=" + a.checksum
	}
	instr := kind + flags + " " + strings.Join(shown, " ") + " " + a.sd.DestPath
	fill := func(w *layerWriter, wtmp string) error {
		for i, op := range ops {
			if err := s.writeOp(w, src, op, own, mode, fromContext, excl, path.Join(wtmp, fmt.Sprintf("x%d", i)), tmp, a.unpackURL); err != nil {
				return err
			}
		}
		return nil
	}
	if a.link {
		return s.linkStep(instr, k.sum(), lk.sum(), instr+" # buildkit", fill)
	}
	return s.fsStep(instr, k.sum(), instr+" # buildkit", func() (Ref, error) {
		return s.commit(fill)
	})
}

// linkStep runs a COPY --link: its files go into a layer of their own,
// made on an empty filesystem, which is kept under linkKey (a key without
// the stage's layers) and stacked onto the stage's. A later build whose
// layers below changed takes that layer again instead of copying.
func (s *state) linkStep(instr, key, linkKey, createdBy string, fill func(w *layerWriter, tmp string) error) error {
	return s.fsStepReused(instr, key, createdBy, func() (Ref, bool, error) {
		if !s.noCache {
			l, ok, err := s.b.exec.Lookup(s.b.ctx, linkKey)
			if err != nil {
				return nil, false, err
			}
			if ok {
				r, err := s.b.exec.Rebase(s.b.ctx, s.ref, l)
				return r, true, err
			}
		}
		scratch, err := s.b.exec.Scratch(s.b.ctx, scratchConfig(s.platform))
		if err != nil {
			return nil, false, err
		}
		l, err := s.commitOn(scratch, newLayerFS(nil, s.b.exec.IDs()), fill)
		if err != nil {
			return nil, false, err
		}
		if err := s.b.exec.Record(s.b.ctx, linkKey, l); err != nil {
			return nil, false, err
		}
		r, err := s.b.exec.Rebase(s.b.ctx, s.ref, l)
		return r, false, err
	})
}

// copyPlan works out what each source is and where it goes, and whether
// the destination is a directory.
func (s *state) copyPlan(a copyArgs, src srcFS, excl *ignoreRules) ([]copyOp, bool, error) {
	raw := a.sd.DestPath
	destDir := raw == "" || raw == "." || raw == ".." || strings.HasSuffix(raw, "/") || strings.HasSuffix(raw, "/.") || strings.HasSuffix(raw, "/..") || a.parents
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
	// A --link layer is made on nothing: symlinks of the stage's
	// filesystem are not followed in its destination.
	var destFS srcFS = base
	if a.link {
		destFS = newLayerFS(nil, s.b.exec.IDs())
	}

	var ops []copyOp
	for _, p := range a.sd.SourcePaths {
		if isURL(p) {
			r, err := newRemote(p, a.checksum)
			if err != nil {
				return nil, false, err
			}
			op := copyOp{kind: opRemote, remote: r}
			if destDir {
				if op.name, err = r.name(); err != nil {
					return nil, false, err
				}
			}
			ops = append(ops, op)
			continue
		}
		pivot, pattern := "", p
		if a.parents {
			pivot, pattern = splitPivot(p)
		}
		matches, err := glob(src, pattern)
		if err != nil {
			return nil, false, err
		}
		if len(matches) == 0 && !hasMeta(pattern) {
			return nil, false, fmt.Errorf("source %q: not found in %s", p, where(a))
		}
		for _, m := range matches {
			e, err := src.lstat(m.rel)
			if err != nil {
				return nil, false, err
			}
			op := copyOp{kind: opEntry, rel: m.rel, e: e, name: m.name}
			if a.parents {
				op.keep = strings.TrimPrefix(strings.TrimPrefix(m.path, pivot), "/")
			}
			switch {
			case e.mode.IsDir():
				op.kind = opTree
			case a.add && a.unpack && e.mode.IsRegular():
				_, closeFn, ok, err := openArchive(e.host)
				if err != nil {
					return nil, false, err
				}
				if ok {
					closeFn()
					op.kind = opArchive
				}
			}
			if op.kind != opTree && excl.skip(op.matchPath(), false) {
				continue
			}
			ops = append(ops, op)
		}
	}
	for _, c := range a.sd.SourceContents {
		ops = append(ops, copyOp{kind: opData, name: c.Path, data: []byte(c.Data)})
	}
	if len(ops) == 0 {
		return nil, false, fmt.Errorf("no source files were specified (the patterns match nothing in %s)", where(a))
	}
	if len(ops) > 1 && !destDir {
		return nil, false, fmt.Errorf("when copying more than one source file, the destination must be a directory and end with a /")
	}
	for i := range ops {
		op := &ops[i]
		var err error
		target := destRel
		if op.keep != "" {
			target = joinRel(destRel, op.keep)
		}
		switch {
		case op.kind == opTree || op.kind == opArchive:
			op.dest, err = resolve(destFS, target, true)
		case destDir && op.keep == "":
			op.dest, err = resolveParent(destFS, joinRel(destRel, op.name))
		default:
			op.dest, err = resolveParent(destFS, target)
		}
		if err != nil {
			return nil, false, err
		}
		if op.kind == opRemote && a.unpackURL {
			if op.into, err = resolve(destFS, target, true); err != nil {
				return nil, false, err
			}
		}
		if op.dest == "" && op.kind != opTree && op.kind != opArchive && op.into == "" {
			return nil, false, fmt.Errorf("cannot copy a file onto the root directory")
		}
	}
	return ops, destDir, nil
}

// splitPivot splits a COPY --parents source at its "/./": the parents
// kept are those after it (all of them without one).
func splitPivot(p string) (pivot, pattern string) {
	t := strings.TrimPrefix(p, "/")
	for strings.HasPrefix(t, "./") {
		t = strings.TrimPrefix(t, "./")
	}
	if i := strings.Index(t, "/./"); i >= 0 {
		pivot = cleanRel(t[:i])
		return pivot, pivot + "/" + t[i+3:]
	}
	return "", p
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

// octalMode converts permission bits written in octal (setuid 04000,
// setgid 02000, sticky 01000 included) to an fs.FileMode.
func octalMode(n uint64) fs.FileMode {
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
	return m
}
