// Package snapshot turns what a sandbox changed into a layer of the store,
// and keeps the record that makes it a snapshot.
//
// # Vocabulary
//
//   - parent: what the sandbox started from: an image, another snapshot,
//     or the host image; it has a key and a list of layers.
//   - layer: the sandbox's changes (its overlay upper directory), copied
//     into the store in overlay format; its id is a hash of its content
//     (paths, types, modes, owners, contents, link targets and extended
//     attributes, but not times), so equal changes give equal ids.
//   - key: a snapshot's cache key, the hash of its parent's key and its
//     layer's id: equal changes on the same parent give the same key.
//
// A snapshot is a record in the store (kind "snapshot", named by its key)
// listing every layer it stands on, so Prune keeps them, with its parent's
// key and its OCI config.
package snapshot
