package ns

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
// cgroups of sandboxes.
const cgroupParent = "cc-sandbox"

// cgroup is the control group of one sandbox with limits. Hosts may have
// cgroup v2 (unified), v1 (one hierarchy per controller) or both at once
// (hybrid): each controller is taken from v2 when v2 offers it, else v1.
type cgroup struct {
	dirs    []string // created directories, removed in reverse order
	memory  string   // the directory with the memory controller, or ""
	v2mem   bool     // memory is a v2 directory
	procsIn []string // directories whose cgroup.procs gets the pid
}

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	mount       string
	v2          bool
	controllers map[string]bool
}

// newCgroup creates the cgroup for cfg's limits, or returns nil when cfg
// sets none. A limit this host cannot enforce is an error naming the
// missing controller.
func newCgroup(cfg *hv.Config) (*cgroup, error) {
	var want []string
	if cfg.MemoryMB > 0 {
		want = append(want, "memory")
	}
	if cfg.CPUs > 0 {
		want = append(want, "cpu")
	}
	if cfg.PidsMax > 0 {
		want = append(want, "pids")
	}
	if len(want) == 0 {
		return nil, nil
	}
	hs, err := hierarchies()
	if err != nil {
		return nil, err
	}
	cg := &cgroup{}
	made := map[string]string{} // hierarchy mount → sandbox dir
	for _, ctrl := range want {
		h := pick(hs, ctrl)
		if h == nil {
			return nil, fmt.Errorf("%s limit: this host offers no cgroup %s controller", optionName(ctrl), ctrl)
		}
		dir, ok := made[h.mount]
		if !ok {
			if dir, err = cg.makeDir(h, cfg.ID); err != nil {
				cg.remove()
				return nil, fmt.Errorf("%s limit: %w", optionName(ctrl), err)
			}
			made[h.mount] = dir
			cg.procsIn = append(cg.procsIn, dir)
		}
		if err := setLimit(dir, h.v2, ctrl, cfg); err != nil {
			cg.remove()
			return nil, fmt.Errorf("%s limit: %w", optionName(ctrl), err)
		}
		if ctrl == "memory" {
			cg.memory, cg.v2mem = dir, h.v2
		}
	}
	return cg, nil
}

func optionName(ctrl string) string {
	switch ctrl {
	case "memory":
		return "WithMemoryMB"
	case "cpu":
		return "WithCPUs"
	}
	return "pids"
}

// pick returns the hierarchy that offers ctrl, v2 first.
func pick(hs []hierarchy, ctrl string) *hierarchy {
	for i := range hs {
		if hs[i].v2 && hs[i].controllers[ctrl] {
			return &hs[i]
		}
	}
	for i := range hs {
		if !hs[i].v2 && hs[i].controllers[ctrl] {
			return &hs[i]
		}
	}
	return nil
}

// hierarchies lists the cgroup hierarchies mounted in this mount namespace.
func hierarchies() ([]hierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts ... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 || fields[3] != "/" {
			continue // only whole hierarchies: a bind of a sub-cgroup is no place to make ours
		}
		mount := fields[4]
		switch tail[0] {
		case "cgroup2":
			b, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
			if err != nil || seen[mount] {
				continue
			}
			seen[mount] = true
			h := hierarchy{mount: mount, v2: true, controllers: map[string]bool{}}
			for _, c := range strings.Fields(string(b)) {
				h.controllers[c] = true
			}
			hs = append(hs, h)
		case "cgroup":
			if seen[mount] {
				continue
			}
			seen[mount] = true
			h := hierarchy{mount: mount, controllers: map[string]bool{}}
			for _, o := range strings.Split(tail[2], ",") {
				h.controllers[o] = true
			}
			hs = append(hs, h)
		}
	}
	return hs, sc.Err()
}

// makeDir creates cc-sandbox/<id> in h, enabling the controllers on the way
// down in v2.
func (cg *cgroup) makeDir(h *hierarchy, id string) (string, error) {
	parent := filepath.Join(h.mount, cgroupParent)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return "", fmt.Errorf("cannot create cgroups under %s (%v): run as root or give this user a delegated cgroup", h.mount, err)
		}
		return "", err
	}
	if h.v2 {
		var ctrls []string
		for _, c := range []string{"memory", "cpu", "pids"} {
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
	dir := filepath.Join(parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
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
	optional := func(file, value string) {
		os.WriteFile(filepath.Join(dir, file), []byte(value), 0)
	}
	switch ctrl {
	case "memory":
		bytes := strconv.FormatUint(cfg.MemoryMB<<20, 10)
		if v2 {
			optional("memory.swap.max", "0")
			return write("memory.max", bytes)
		}
		if err := write("memory.limit_in_bytes", bytes); err != nil {
			return err
		}
		optional("memory.memsw.limit_in_bytes", bytes)
	case "cpu":
		const period = 100000
		quota := strconv.Itoa(int(cfg.CPUs * period))
		if v2 {
			return write("cpu.max", quota+" "+strconv.Itoa(period))
		}
		if err := write("cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
			return err
		}
		return write("cpu.cfs_quota_us", quota)
	case "pids":
		return write("pids.max", strconv.FormatInt(cfg.PidsMax, 10))
	}
	return nil
}

// add moves pid into the cgroup in every hierarchy.
func (cg *cgroup) add(pid int) error {
	for _, d := range cg.procsIn {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("moving the sandbox into %s: %w", d, err)
		}
	}
	return nil
}

// oomKilled reports whether the kernel killed a process for memory.
func (cg *cgroup) oomKilled() bool { return cg.oomKills() > 0 }

// oomKills returns how many processes the kernel killed for memory.
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

// OOMKills returns how many processes of the sandbox the kernel killed for
// memory (0 without a memory limit).
func (s *sandbox) OOMKills() int { return s.cgroup.oomKills() }

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
