// Package untrusted is the host's only way into a directory tree that a
// sandbox can write: a namespace sandbox's writable layer, its state
// directory, a layer unpacked from a sandbox's tar.
//
// Code in the sandbox is hostile and fast: while the host reads its tree it
// can rename a directory and put a symlink to a host directory in its place,
// as often as it likes. A path string resolved by the host ("upper/x/d/f")
// would follow that link out of the tree. So nothing here takes a path
// below the tree's root: a Dir is an open directory, Lookup takes one name
// and opens that entry (O_PATH) with openat2's RESOLVE_BENEATH,
// RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS, and everything done to the
// entry afterwards (stat, read, readlink, extended attributes, a chmod to
// read what its owner locked) acts on that one inode through its
// descriptor. A symlink is read, never followed; a directory swapped after
// its lookup stays the one that was looked up.
//
// Kernels without openat2 (before Linux 5.6) get an error naming it:
// there is no safe way to walk such a tree there.
//
// make lint checks that the packages which read sandbox trees (this one
// and internal/snapshot) call no path-based file functions (see
// internal/tools/treelint).
package untrusted
