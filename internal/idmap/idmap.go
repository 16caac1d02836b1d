// Package idmap decides how user and group ids inside sandboxes map to ids
// on the host, and converts between the two. The same mapping governs the
// user namespace of every sandbox and the ownership of files in the layer
// store, so that a file owned by uid 1000 in an image appears owned by uid
// 1000 inside every sandbox.
//
// # Vocabulary
//
//   - container id: a uid or gid as processes inside a sandbox see it;
//   - host id: the same id as the host kernel and filesystem see it.
//
// As root, container ids 0..65535 map to host ids RootBase..RootBase+65535,
// so a sandbox's root is never the host's root and image ownership is kept.
// As an unprivileged user, the only id available is the user's own: container
// id 0 maps to it, and every file keeps the user as owner (ownership inside
// images is lost, and sandboxes can run only as their root).
package idmap

import (
	"fmt"
	"os"
)

// RootBase is the first host id of the range sandboxes use when the host
// program runs as root.
const RootBase = 1_000_000_000

// RootSize is the number of ids in that range: every 16-bit id.
const RootSize = 65536

// Range maps Size consecutive ids starting at ContainerID to ids starting
// at HostID, as one line of /proc/PID/uid_map.
type Range struct {
	ContainerID uint32
	HostID      uint32
	Size        uint32
}

// Map is the id mapping of sandboxes for one host user.
type Map struct {
	UIDs []Range
	GIDs []Range
}

// Current returns the mapping for the calling process: a 65536-id range at
// RootBase when it runs as root, and its own uid and gid alone otherwise.
func Current() Map {
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		return Map{
			UIDs: []Range{{0, RootBase, RootSize}},
			GIDs: []Range{{0, RootBase, RootSize}},
		}
	}
	return Map{
		UIDs: []Range{{0, uint32(uid), 1}},
		GIDs: []Range{{0, uint32(gid), 1}},
	}
}

// Single reports whether the map holds one id only (unprivileged mode), in
// which case file ownership cannot be kept.
func (m Map) Single() bool {
	return size(m.UIDs) <= 1
}

// HostUID converts a container uid to a host uid.
func (m Map) HostUID(id uint32) (uint32, bool) { return toHost(m.UIDs, id) }

// HostGID converts a container gid to a host gid.
func (m Map) HostGID(id uint32) (uint32, bool) { return toHost(m.GIDs, id) }

// ContainerUID converts a host uid to a container uid.
func (m Map) ContainerUID(id uint32) (uint32, bool) { return toContainer(m.UIDs, id) }

// ContainerGID converts a host gid to a container gid.
func (m Map) ContainerGID(id uint32) (uint32, bool) { return toContainer(m.GIDs, id) }

// String describes the map, for errors and logs.
func (m Map) String() string {
	return fmt.Sprintf("uids %v gids %v", m.UIDs, m.GIDs)
}

func toHost(rs []Range, id uint32) (uint32, bool) {
	for _, r := range rs {
		if id >= r.ContainerID && id-r.ContainerID < r.Size {
			return r.HostID + (id - r.ContainerID), true
		}
	}
	return 0, false
}

func toContainer(rs []Range, id uint32) (uint32, bool) {
	for _, r := range rs {
		if id >= r.HostID && id-r.HostID < r.Size {
			return r.ContainerID + (id - r.HostID), true
		}
	}
	return 0, false
}

func size(rs []Range) uint32 {
	var n uint32
	for _, r := range rs {
		n += r.Size
	}
	return n
}
