package image

import (
	"path"
	"strings"
)

// Whiteout names of the OCI layer format.
const (
	whPrefix = ".wh."         // .wh.NAME hides NAME of the layers below
	whMeta   = ".wh..wh."     // AUFS metadata: skipped
	whOpaque = ".wh..wh..opq" // hides every entry below its directory
)

// Xattrs of the overlay format and of the store.
const (
	xattrOpaque       = "user.overlay.opaque" // "y" on an opaque directory
	xattrTrustedOpq   = "trusted.overlay.opaque"
	xattrOwner        = "user.cc.owner" // "uid:gid" in unprivileged mode
	paxXattrPrefix    = "SCHILY.xattr."
	defaultOverflowID = 65534 // nobody: ids the map cannot hold
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

// joinName joins a clean parent ("" for the root) and a base.
func joinName(parent, base string) string {
	if parent == "" {
		return base
	}
	return parent + "/" + base
}

// internalXattr reports whether an xattr belongs to the overlay format or
// to the store, so that it is neither taken from an archive nor written to
// one.
func internalXattr(name string) bool {
	return strings.HasPrefix(name, "user.overlay.") ||
		strings.HasPrefix(name, "trusted.overlay.") ||
		strings.HasPrefix(name, "user.cc.") ||
		name == "security.selinux"
}
