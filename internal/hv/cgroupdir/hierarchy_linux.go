package cgroupdir

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccsandbox/sandbox/internal/fsutil"
)

// Hierarchy is one mounted cgroup hierarchy, and where this process sits
// in it.
type Hierarchy struct {
	Mount       string
	V2          bool
	Controllers map[string]bool // v1: those of the mount; v2: those the caller's cgroup offers
	// Caller is this process's cgroup in the hierarchy, as a directory
	// under Mount: the parent of every sandbox cgroup made here.
	Caller string
}

// Hierarchies lists the cgroup hierarchies mounted in this mount namespace
// that contain this process's cgroup, with that cgroup in each. A process
// in a cc-host leaf (see EnableIn) counts as being in its parent. It
// returns an error when /proc/self/cgroup or /proc/self/mountinfo cannot
// be read.
func Hierarchies() ([]Hierarchy, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []Hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts ... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 || (tail[0] != "cgroup" && tail[0] != "cgroup2") {
			continue
		}
		root, mount := fsutil.UnescapeMountinfo(fields[3]), fsutil.UnescapeMountinfo(fields[4])
		if seen[mount] {
			continue
		}
		h := Hierarchy{Mount: mount, V2: tail[0] == "cgroup2", Controllers: map[string]bool{}}
		var path string
		if h.V2 {
			path, ok = own[""]
		} else {
			for _, o := range strings.Split(tail[2], ",") {
				if p, found := own[o]; found {
					h.Controllers[o] = true
					path, ok = p, true
				}
			}
		}
		// A bind of part of a hierarchy serves only when this process's
		// cgroup lies within it.
		rel, within := strings.CutPrefix(path, strings.TrimSuffix(root, "/"))
		if !ok || !within || (rel != "" && !strings.HasPrefix(rel, "/")) {
			continue
		}
		seen[mount] = true
		h.Caller = filepath.Join(mount, rel)
		if filepath.Base(h.Caller) == hostLeaf {
			h.Caller = filepath.Dir(h.Caller)
		}
		if h.V2 {
			b, err := os.ReadFile(filepath.Join(h.Caller, "cgroup.controllers"))
			if err != nil {
				continue
			}
			for _, c := range strings.Fields(string(b)) {
				h.Controllers[c] = true
			}
		}
		hs = append(hs, h)
	}
	return hs, sc.Err()
}

// ownCgroups reads /proc/self/cgroup: this process's cgroup path by v1
// controller, and by "" for the v2 hierarchy.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	own := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-id:controllers:path
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if ctrls == "" {
			own[""] = path
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			own[c] = path
		}
	}
	return own, nil
}

// Pick returns the hierarchy that offers ctrl, v2 first, or nil.
func Pick(hs []Hierarchy, ctrl string) *Hierarchy {
	for i := range hs {
		if hs[i].V2 && hs[i].Controllers[ctrl] {
			return &hs[i]
		}
	}
	for i := range hs {
		if !hs[i].V2 && hs[i].Controllers[ctrl] {
			return &hs[i]
		}
	}
	return nil
}

// V2Of returns the cgroup v2 hierarchy, or nil.
func V2Of(hs []Hierarchy) *Hierarchy {
	for i := range hs {
		if hs[i].V2 {
			return &hs[i]
		}
	}
	return nil
}
