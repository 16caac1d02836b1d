package gvisor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
)

// cgroupParent names the directory, in each hierarchy, that holds the
// cgroups of sandboxes (the namespace backend's too).
const cgroupParent = "cc-sandbox"

// cgroup holds a sandbox's memory and CPU limits on the host: the sentry
// and the gofer are the sandbox's host processes, and gVisor enforces
// neither limit itself. Each controller comes from cgroup v2 when v2 offers
// it, else from v1 (hosts may have both: hybrid).
type cgroup struct {
	dirs   []string // created directories, removed in reverse order
	memory string   // the directory with the memory controller, or ""
	v2mem  bool
}

// newCgroup creates the cgroup of cfg's memory and CPU limits, or returns
// nil when it sets neither. A limit this host cannot enforce is an error
// naming the missing controller.
func newCgroup(cfg *hv.Config) (*cgroup, error) {
	var want []string
	if cfg.MemoryMB > 0 {
		want = append(want, "memory")
	}
	if cfg.CPUs > 0 {
		want = append(want, "cpu")
	}
	if len(want) == 0 {
		return nil, nil
	}
	hs, err := hierarchies()
	if err != nil {
		return nil, err
	}
	cg := &cgroup{}
	for _, ctrl := range want {
		h := pick(hs, ctrl)
		if h == nil {
			return nil, fmt.Errorf("%s limit: this host offers no cgroup %s controller", option(ctrl), ctrl)
		}
		dir, err := cg.makeDir(h, cfg.ID)
		if err != nil {
			cg.remove()
			return nil, fmt.Errorf("%s limit: %w", option(ctrl), err)
		}
		if err := setLimit(dir, h.v2, ctrl, cfg); err != nil {
			cg.remove()
			return nil, fmt.Errorf("%s limit: %w", option(ctrl), err)
		}
		if ctrl == "memory" {
			cg.memory, cg.v2mem = dir, h.v2
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

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	mount       string
	v2          bool
	controllers map[string]bool
}

// pick returns the hierarchy that offers ctrl, v2 first.
func pick(hs []hierarchy, ctrl string) *hierarchy {
	for _, v2 := range []bool{true, false} {
		for i := range hs {
			if hs[i].v2 == v2 && hs[i].controllers[ctrl] {
				return &hs[i]
			}
		}
	}
	return nil
}

// hierarchies lists the whole cgroup hierarchies mounted here.
func hierarchies() ([]hierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []hierarchy
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 || fields[3] != "/" {
			continue
		}
		h := hierarchy{mount: fields[4], controllers: map[string]bool{}}
		switch tail[0] {
		case "cgroup2":
			b, err := os.ReadFile(filepath.Join(h.mount, "cgroup.controllers"))
			if err != nil {
				continue
			}
			h.v2 = true
			for _, c := range strings.Fields(string(b)) {
				h.controllers[c] = true
			}
		case "cgroup":
			for _, o := range strings.Split(tail[2], ",") {
				h.controllers[o] = true
			}
		default:
			continue
		}
		hs = append(hs, h)
	}
	return hs, sc.Err()
}

// makeDir creates cc-sandbox/<id> in h, unless it exists already (two
// controllers of one hierarchy), enabling the controllers on the way down
// in v2.
func (cg *cgroup) makeDir(h *hierarchy, id string) (string, error) {
	parent := filepath.Join(h.mount, cgroupParent)
	dir := filepath.Join(parent, id)
	for _, d := range cg.dirs {
		if d == dir {
			return dir, nil
		}
	}
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return "", fmt.Errorf("cannot create cgroups under %s (%v): run as root or give this user a delegated cgroup", h.mount, err)
		}
		return "", err
	}
	if h.v2 {
		var ctrls []string
		for _, c := range []string{"memory", "cpu"} {
			if h.controllers[c] {
				ctrls = append(ctrls, "+"+c)
			}
		}
		for _, d := range []string{h.mount, parent} {
			if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte(strings.Join(ctrls, " ")), 0); err != nil {
				return "", fmt.Errorf("enabling controllers in %s: %w", d, err)
			}
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return "", fmt.Errorf("cannot create a cgroup under %s (%v): run as root or give this user a delegated cgroup", parent, err)
		}
		return "", err
	}
	cg.dirs = append(cg.dirs, dir)
	return dir, nil
}

// setLimit writes one controller's limit.
func setLimit(dir string, v2 bool, ctrl string, cfg *hv.Config) error {
	write := func(file, value string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
		return nil
	}
	switch {
	case ctrl == "memory" && v2:
		os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0)
		return write("memory.max", strconv.FormatUint(cfg.MemoryMB<<20, 10))
	case ctrl == "memory":
		if err := write("memory.limit_in_bytes", strconv.FormatUint(cfg.MemoryMB<<20, 10)); err != nil {
			return err
		}
		os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatUint(cfg.MemoryMB<<20, 10)), 0)
		return nil
	}
	const period = 100000
	quota := strconv.Itoa(int(cfg.CPUs * period))
	if v2 {
		return write("cpu.max", quota+" "+strconv.Itoa(period))
	}
	if err := write("cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
		return err
	}
	return write("cpu.cfs_quota_us", quota)
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
	file := "memory.oom_control"
	if cg.v2mem {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.memory, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == "oom_kill" {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// remove deletes the cgroup directories once they are empty.
func (cg *cgroup) remove() {
	if cg == nil {
		return
	}
	for i := len(cg.dirs) - 1; i >= 0; i-- {
		for try := 0; try < 50; try++ {
			err := os.Remove(cg.dirs[i])
			if err == nil || errors.Is(err, os.ErrNotExist) || !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond) // the last task is still leaving
		}
	}
	cg.dirs = nil
}
