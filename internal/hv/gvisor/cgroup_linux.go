package gvisor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/hv/cgroupdir"
)

// cgroup holds a sandbox's memory and CPU limits on the host: the sentry
// and the gofer are the sandbox's host processes, and gVisor enforces
// neither limit itself. Its directory in each hierarchy it uses is a
// sandbox cgroup under the caller's own (see cgroupdir), so that a sandbox
// stays within the limits of the container or unit its caller runs in,
// and one whose host was killed is swept by the next start. Each
// controller comes from cgroup v2 when v2 offers it, else from v1 (hosts
// may have both: hybrid).
type cgroup struct {
	dirs   []string // created directories, removed in reverse order
	memory string   // the directory with the memory controller, or ""
	v2mem  bool
}

// newCgroup sweeps, once per process, the cgroups of sandboxes whose host
// is gone, then creates the cgroup of cfg's memory and CPU limits, or
// returns nil when it sets neither. A limit this host cannot enforce is an
// error naming the missing controller.
func newCgroup(cfg *hv.Config) (*cgroup, error) {
	var want []string
	if cfg.MemoryMB > 0 {
		want = append(want, "memory")
	}
	if cfg.CPUs > 0 {
		want = append(want, "cpu")
	}
	hs, err := cgroupdir.Hierarchies()
	if err == nil {
		cgroupdir.SweepOnce(hs, cfg.Logger)
	}
	if len(want) == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s limit: reading the cgroup hierarchies: %w", option(want[0]), err)
	}
	name := cgroupdir.Name(cfg.ID)
	cg := &cgroup{}
	for _, ctrl := range want {
		h := cgroupdir.Pick(hs, ctrl)
		if h == nil {
			cg.remove()
			return nil, fmt.Errorf("%s limit: this host offers no cgroup %s controller", option(ctrl), ctrl)
		}
		dir, err := cg.makeDir(h, name, ctrl)
		if err != nil {
			cg.remove()
			return nil, fmt.Errorf("%s limit: %w", option(ctrl), err)
		}
		if err := cgroupdir.SetLimit(dir, h.V2, ctrl, cfg); err != nil {
			cg.remove()
			return nil, fmt.Errorf("%s limit: %w", option(ctrl), err)
		}
		if ctrl == "memory" {
			cg.memory, cg.v2mem = dir, h.V2
		}
	}
	return cg, nil
}

func option(ctrl string) string {
	if ctrl == "memory" {
		return "WithMemoryMB"
	}
	return "WithCPUs"
}

// makeDir returns the sandbox cgroup name under the caller's cgroup in h
// for controller ctrl, creating it unless it exists already (two
// controllers of one hierarchy); in v2 it first enables ctrl for the
// caller's children (see cgroupdir.EnableIn).
func (cg *cgroup) makeDir(h *cgroupdir.Hierarchy, name, ctrl string) (string, error) {
	if h.V2 {
		if err := cgroupdir.EnableIn(h.Caller, []string{ctrl}); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(h.Caller, name)
	if slices.Contains(cg.dirs, dir) {
		return dir, nil
	}
	if err := cgroupdir.Mkdir(dir); err != nil {
		return "", err
	}
	cg.dirs = append(cg.dirs, dir)
	return dir, nil
}

// add moves pid into the cgroup in every hierarchy.
func (cg *cgroup) add(pid int) error {
	if cg == nil {
		return nil
	}
	for _, d := range cg.dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("moving the sandbox into %s: %w", d, err)
		}
	}
	return nil
}

// oomKills returns how many processes the host killed for memory.
func (cg *cgroup) oomKills() int {
	if cg == nil || cg.memory == "" {
		return 0
	}
	return cgroupdir.OOMKills(cg.memory, cg.v2mem)
}

// remove deletes the cgroup directories once they are empty.
func (cg *cgroup) remove() {
	if cg == nil {
		return
	}
	for i := len(cg.dirs) - 1; i >= 0; i-- {
		cgroupdir.Remove(cg.dirs[i])
	}
	cg.dirs = nil
}
