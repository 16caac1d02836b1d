package layertar

import "strings"

// Whiteout names of the OCI layer format.
const (
	WhPrefix = ".wh."         // .wh.NAME hides NAME of the layers below
	WhMeta   = ".wh..wh."     // AUFS metadata: skipped
	WhOpaque = ".wh..wh..opq" // hides every entry below its directory
)

// Xattrs of the overlay format and of the layer store, and how a tar
// carries xattrs.
const (
	XattrOpaque        = "user.overlay.opaque" // "y" on an opaque directory
	XattrTrustedOpaque = "trusted.overlay.opaque"
	XattrOwner         = "user.cc.owner" // "uid:gid" in unprivileged mode
	PaxXattrPrefix     = "SCHILY.xattr."
	OverflowID         = 65534 // nobody: ids the map cannot hold
)

// JoinName joins a clean entry name parent ("" for the root) and a base.
func JoinName(parent, base string) string {
	if parent == "" {
		return base
	}
	return parent + "/" + base
}

// InternalXattr reports whether an xattr belongs to the overlay format or
// to the store, so that it is neither taken from an archive nor written to
// one.
func InternalXattr(name string) bool {
	return strings.HasPrefix(name, "user.overlay.") ||
		strings.HasPrefix(name, "trusted.overlay.") ||
		strings.HasPrefix(name, "user.cc.") ||
		name == "security.selinux"
}
