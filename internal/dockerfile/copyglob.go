package dockerfile

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
)

// match is a source a pattern matched: its resolved path, the path it
// was matched as (clean, relative, symlinks kept) and its base name.
type match struct{ rel, path, name string }

// hasMeta reports whether a source is a pattern.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// glob returns the sources a COPY source names: itself, or what its
// pattern matches, element by element as path.Match matches, "**"
// standing for any number of directories (none included).
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
		return []match{{rel: r, path: rel, name: path.Base("/" + rel)}}, nil
	}
	cur := []string{""}
	for _, part := range splitRel(rel) {
		var next []string
		seen := map[string]bool{}
		add := func(p string) {
			if !seen[p] {
				seen[p] = true
				next = append(next, p)
			}
		}
		for _, c := range cur {
			dir, err := resolve(fsys, c, true)
			if err != nil {
				continue
			}
			switch {
			case part == "**":
				if err := descendants(fsys, c, dir, add); err != nil {
					return nil, err
				}
			case !hasMeta(part):
				if _, err := fsys.lstat(joinRel(dir, part)); err == nil {
					add(joinRel(c, part))
				}
			default:
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
						add(joinRel(c, n))
					}
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
			out = append(out, match{rel: r, path: c, name: path.Base("/" + c)})
		}
	}
	return out, nil
}

// descendants adds c (resolved as dir) and every directory below it, as
// matched paths, for "**". Symlinks to directories are not entered.
func descendants(fsys srcFS, c, dir string, add func(string)) error {
	e, err := fsys.lstat(dir)
	if err != nil || !e.mode.IsDir() {
		return nil
	}
	add(c)
	names, err := fsys.readDir(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := descendants(fsys, joinRel(c, n), joinRel(dir, n), add); err != nil {
			return err
		}
	}
	return nil
}

// hashTree adds the names, types, modes and contents of the tree at rel
// to a key, less what excl leaves out (matching paths below base).
func hashTree(k *hasher, fsys srcFS, rel string, excl *ignoreRules, base string) error {
	e, err := fsys.lstat(rel)
	if err != nil {
		return err
	}
	return hashEntry(k, fsys, rel, ".", e, excl, base)
}

func hashEntry(k *hasher, fsys srcFS, rel, name string, e *entry, excl *ignoreRules, matchPath string) error {
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
			if excl.skip(joinRel(matchPath, n), ce.mode.IsDir()) {
				continue
			}
			if err := hashEntry(k, fsys, joinRel(rel, n), name+"/"+n, ce, excl, joinRel(matchPath, n)); err != nil {
				return err
			}
		}
		k.add("end of " + name)
	}
	return nil
}

// skip reports whether COPY --exclude leaves the entry p out. A
// directory that is excluded is still entered when an exception ("!")
// may include something below it: isDir asks whether to skip it whole.
func (r *ignoreRules) skip(p string, isDir bool) bool {
	if r == nil || !r.excluded(p) {
		return false
	}
	return !isDir || !r.exceptions
}
