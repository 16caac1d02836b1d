package image

import (
	"path"
	"strings"
)

// cleanName returns an archive entry's name as a clean slash-separated path
// relative to the layer root, "" for the root itself. It refuses absolute
// names, ".." elements, NUL bytes and empty names.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", entryErr(name, ErrInvalidEntry, "empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", entryErr(name, ErrInvalidEntry, "name contains a NUL byte")
	}
	if strings.HasPrefix(name, "/") {
		return "", entryErr(name, ErrUnsafeEntry, "absolute name")
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", entryErr(name, ErrUnsafeEntry, "name has a \"..\" element")
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// splitName splits a clean name into its parent ("" for the root) and base.
func splitName(name string) (parent, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}
