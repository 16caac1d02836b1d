package agent

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// identity is who a command runs as.
type identity struct {
	uid, gid uint32
	groups   []uint32 // supplementary groups
	home     string
}

// resolveUser turns a user spec ("", name, uid, name:group, uid:gid) into
// ids, reading the sandbox's /etc/passwd and /etc/group as Docker does: a
// name must exist; a numeric uid without a passwd entry runs with gid 0; the
// supplementary groups are those that list the user by name. The files are
// resolved in r.
func resolveUser(r *root, spec string) (identity, error) {
	id := identity{home: "/"}
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	passwd := readColonFile(r, "/etc/passwd")
	var name string
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		id.uid = uint32(n)
		for _, f := range passwd {
			if len(f) >= 6 && f[2] == userPart {
				name = f[0]
				id.gid = parseID(f[3])
				id.home = f[5]
				break
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 6 && f[0] == userPart {
				name, found = f[0], true
				id.uid, id.gid, id.home = parseID(f[2]), parseID(f[3]), f[5]
				break
			}
		}
		if !found {
			return id, fmt.Errorf("user %q: no such user in /etc/passwd", userPart)
		}
	}
	groups := readColonFile(r, "/etc/group")
	if hasGroup {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			id.gid = uint32(n)
		} else {
			found := false
			for _, f := range groups {
				if len(f) >= 3 && f[0] == groupPart {
					id.gid, found = parseID(f[2]), true
					break
				}
			}
			if !found {
				return id, fmt.Errorf("group %q: no such group in /etc/group", groupPart)
			}
		}
	}
	id.groups = []uint32{id.gid}
	if name != "" && !hasGroup {
		for _, f := range groups {
			if len(f) < 4 {
				continue
			}
			for _, member := range strings.Split(f[3], ",") {
				if member == name {
					if g := parseID(f[2]); g != id.gid {
						id.groups = append(id.groups, g)
					}
				}
			}
		}
	}
	return id, nil
}

func parseID(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// colonFiles caches the parsed /etc/passwd and /etc/group: every command
// start resolves its user, and re-reading both files through the overlay
// cost more than the rest of the start's preparation.
var colonFiles struct {
	mu      sync.Mutex
	entries map[string]colonFile
}

// colonFile is a parsed file and the identity of the version it came from.
type colonFile struct {
	key    fileVersion
	fields [][]string
}

// fileVersion identifies one version of a file: any write or replacement
// changes its inode, size, or modification or change time.
type fileVersion struct {
	dev, ino   uint64
	size       int64
	mtim, ctim unix.Timespec
}

// racyWindow is how recently changed a file may be for its version to be
// trusted: timestamps are coarser than writes, so a file rewritten in
// place with the same size within this window may keep its version.
const racyWindow = 2 * time.Second

// readColonFile returns the fields of a passwd-style file in r, or nil
// when it cannot be read or is not a regular file. It parses a file again
// only when its version changed, or when it changed too recently for its
// version to tell (racyWindow).
func readColonFile(r *root, path string) [][]string {
	fd, err := r.openat2(path, unix.O_RDONLY|unix.O_NONBLOCK, 0) // a FIFO must not block a start
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	if time.Since(time.Unix(st.Ctim.Unix())) < racyWindow {
		fields, _ := parseColonFile(f)
		return fields
	}
	key := fileVersion{dev: st.Dev, ino: st.Ino, size: st.Size, mtim: st.Mtim, ctim: st.Ctim}
	colonFiles.mu.Lock()
	defer colonFiles.mu.Unlock()
	if e, ok := colonFiles.entries[path]; ok && e.key == key {
		return e.fields
	}
	fields, err := parseColonFile(f)
	if err != nil {
		return nil
	}
	if colonFiles.entries == nil {
		colonFiles.entries = map[string]colonFile{}
	}
	colonFiles.entries[path] = colonFile{key: key, fields: fields}
	return fields
}

// parseColonFile reads a passwd-style file into its fields.
func parseColonFile(f *os.File) ([][]string, error) {
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}
