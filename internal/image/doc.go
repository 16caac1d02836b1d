// Package image gets OCI images into a content-addressed layer store and
// back out again: it pulls from registries, loads OCI layouts and docker
// archives, unpacks layers into directories an overlay mount can use as
// lower layers, and writes layers and images back out as tar streams, OCI
// layouts and docker archives.
//
// # Vocabulary
//
//   - layer: one directory tree in the store, in overlay format, named by a
//     digest: the diffID (sha256 of the uncompressed tar) for image layers,
//     or an id the caller chooses for layers added from a directory
//     (snapshots);
//   - overlay format: a whiteout is a character device 0/0 with the
//     whited-out name, an opaque directory carries the xattr
//     user.overlay.opaque=y (overlayfs mounted with "userxattr"), and
//     ownership is shifted by the id map (see below);
//   - record: a small named document in the store (an image, a reference, a
//     snapshot) that lists the layers it keeps alive;
//   - lease: a lock held by a running process that keeps layers alive
//     without a record, released when the process ends however it ends.
//
// # Store layout
//
// Everything lives under one root directory (the SDK's cache directory):
//
//	store.json                     format version and ownership mode
//	store.lock                     shared by writers, exclusive by Prune
//	layers/sha256/<hex>/fs/        a complete layer: the overlay lower dir
//	layers/sha256/<hex>/layer.json its metadata (size, entries, source)
//	locks/<hex>.lock               one writer per layer at a time
//	records/<kind>/<name>.json     images, references, snapshots
//	leases/<random>.lease          layers in use by a live process
//	tmp/<name>/, tmp/<name>.lock   work in progress, locked by its owner
//
// The root, layers/ and each layer directory are mode 0755 so that a
// sandbox's user namespace can reach its lower directories; the rest is
// private (0700).
//
// A layer directory appears only when it is complete: it is unpacked under
// tmp/, flushed to disk (syncfs), and renamed into place, and every writer
// takes the layer's lock first and looks again, so two processes adding the
// same layer end with one copy. A crash leaves only unlocked entries under
// tmp/, which Prune removes. Records are written to a temporary name,
// fsynced and renamed.
//
// # Keeping layers alive
//
// Prune removes every layer that no record and no lease lists. A caller
// that adds layers and then writes a record listing them (a snapshot)
// holds the store with Hold around both, so that Prune cannot run in
// between; a running sandbox holds a Lease on its lower layers.
//
// # Ownership
//
// As root, container id U is stored as host id idmap.RootBase+U, so files
// appear with their image ownership inside a user-namespaced sandbox; ids
// outside the 16-bit range become 65534 (nobody). As an unprivileged user
// every file is owned by that user: the container owner is kept in the
// xattr user.cc.owner ("uid:gid", absent for 0:0) on regular files,
// directories and fifos, and is lost on symlinks (Linux allows no user
// xattrs there) and where the filesystem has no user xattrs; trusted.* and
// security.* xattrs cannot be set and are lost; setuid and setgid bits are
// kept, and so are modes (directories get theirs once their entries are
// written), but a file its owner may not read (mode 0000) cannot be
// exported by that user. Export reads ownership back from the mapping or
// the xattr.
//
// # Hostile archives
//
// Unpack refuses, naming the entry: names that are absolute or contain a
// ".." element, entries below a symlink or a non-directory, hard links to
// names not earlier in the same layer, duplicate names (a directory
// repeated as a directory is allowed: its later metadata wins), an entry
// that changes type, data shorter than the header says, and layers larger
// than Limits.MaxBytes (a gzip bomb). All writes go through descriptors
// opened with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, so nothing is written
// outside the layer directory even if the checks had a hole. Device nodes
// are skipped and logged.
package image
