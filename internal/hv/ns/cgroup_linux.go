package ns

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/hv/cgroupdir"
)

// Every namespace sandbox gets a cgroup, so that the host can freeze it
// (see freeze_linux.go) and, when it has limits, bound it. The cgroup
// nests under the caller's own cgroup in each hierarchy, so a sandbox
// never escapes the limits of the container or systemd unit its caller
// runs in. Hosts may have cgroup v2 (unified), v1 (one hierarchy per
// controller) or both at once (hybrid): each controller is taken from v2
// when v2 offers it, else from v1, and the freezer from v2 (cgroup.freeze)
// when there is a v2 hierarchy this process may create cgroups in, else
// from v1's freezer controller.
//
// Layout, with S = <caller's cgroup>/cc-sandbox.PID.START.ID in each
// hierarchy used (see cgroupdir, which places S and sweeps leftovers): the
// agent in S; without limits every command in S too; with limits the
// commands in S/workload, which holds the limits, so that the agent is
// outside their budget and a fork bomb cannot starve it of threads.
//
// In v2, a cgroup with processes may enable no controllers for its
// children (the no-internal-processes rule) unless they are threaded, and
// threads of one process may sit in different cgroups only in a threaded
// subtree. So S/workload is a threaded cgroup, for the threaded
// controllers (pids, cpu), and the memory limit, a domain controller's,
// is set on S itself and covers the agent too. runc and crun put a
// container's processes in one leaf instead, and systemd asks a delegated
// unit to keep its own processes in a leaf and its workloads in siblings;
// neither keeps a supervisor outside the workload's pids budget, which is
// what this layout is for. The caller's own cgroup must enable the
// controllers for S: when the caller's process is in it, the caller moves
// into a leaf below it first (see cgroupdir.EnableIn).
//
// Nothing pays a process migration (it takes a process-wide lock that
// costs milliseconds): the agent starts in S through CLONE_INTO_CGROUP in
// v2 and, in v1, by forking it from a thread that joined S's "tasks"
// alone; commands start in S/workload the same way, forked on an agent's
// thread that joined the workload alone (v1 "tasks", v2 "cgroup.threads";
// see agent.Workload). The agent's cgroup namespace is rooted at S.

// cgroupMode says how sandboxes use cgroups: as this host allows, or, for
// tests, as another kind of host would.
type cgroupMode int

const (
	cgroupAuto    cgroupMode = iota
	cgroupV1Only             // as on a host without cgroup v2
	cgroupV2Split            // v2 gets a workload cgroup even when it holds no limit
	cgroupNone               // no cgroup but for limits (what the always-on cgroup costs)
)

// cgroup is the control group of one sandbox.
type cgroup struct {
	dirs []string // created directories, removed in reverse order

	v2Top      string // S in the v2 hierarchy, or ""
	v2Workload string // v2Top/workload (threaded) when v2 holds pids or cpu limits, else ""

	v1Top      []string // S in each v1 hierarchy used: the agent's cgroups
	v1Workload []string // S/workload in each v1 hierarchy that holds a limit

	freezer   string // the directory the freezer acts on, or ""
	freezerV2 bool   // freezer is a v2 directory (cgroup.freeze)
	noFreezer error  // why there is no freezer

	memory string // the directory with the memory limit, or ""
	v2mem  bool   // memory is a v2 directory
	pids   string // the directory with the pids limit, or ""

	cfg *hv.Config
}

// newCgroup creates the cgroup of the sandbox cfg describes. A limit this
// host cannot enforce is an error naming the missing controller; a missing
// freezer is not an error (Freeze reports it). An unconfined sandbox
// without limits gets none.
func newCgroup(cfg *hv.Config, mode cgroupMode) (*cgroup, error) {
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
	cg := &cgroup{cfg: cfg}
	if len(want) == 0 && (mode == cgroupNone || cfg.Unconfined) {
		// Unconfined sandboxes are the floor benchmarks measure the
		// hardening against, the cgroup included.
		cg.noFreezer = errors.New("the sandbox is unconfined: it has no cgroup")
		return cg, nil
	}
	hs, err := cgroupdir.Hierarchies()
	if err != nil {
		if len(want) > 0 {
			return nil, fmt.Errorf("%s (cgroup %s controller): reading the cgroup hierarchies: %w", optionName(want[0]), want[0], err)
		}
		cg.noFreezer = err
		return cg, nil
	}
	if mode == cgroupV1Only {
		hs = slices.DeleteFunc(hs, func(h cgroupdir.Hierarchy) bool { return h.V2 })
	}
	cgroupdir.SweepOnce(hs, cfg.Logger)
	name := cgroupdir.Name(cfg.ID)
	fail := func(ctrl string, err error) (*cgroup, error) {
		cg.remove()
		return nil, fmt.Errorf("%s (cgroup %s controller): %w", optionName(ctrl), ctrl, err)
	}
	byHierarchy := map[*cgroupdir.Hierarchy][]string{}
	var order []*cgroupdir.Hierarchy
	for _, ctrl := range want {
		h := cgroupdir.Pick(hs, ctrl)
		if h == nil {
			if v2 := cgroupdir.V2Of(hs); v2 != nil && len(hs) == 1 {
				return fail(ctrl, fmt.Errorf("the cgroup %s controller is not available in %s (not enabled for it by its parent)", ctrl, v2.Caller))
			}
			return fail(ctrl, fmt.Errorf("this host offers no cgroup %s controller", ctrl))
		}
		if _, ok := byHierarchy[h]; !ok {
			order = append(order, h)
		}
		byHierarchy[h] = append(byHierarchy[h], ctrl)
	}

	// v2 first: it gives the freezer too.
	if v2 := cgroupdir.V2Of(hs); v2 != nil {
		ctrls := byHierarchy[v2]
		if err := cgroupdir.EnableIn(v2.Caller, ctrls); err != nil {
			return fail(ctrls[0], err)
		}
		top := filepath.Join(v2.Caller, name)
		if err := cg.mkdir(top); err != nil {
			if len(ctrls) > 0 {
				return fail(ctrls[0], err)
			}
			cg.noFreezer = fmt.Errorf("cgroup v2: %w", err)
		} else {
			cg.v2Top = top
			cg.freezer, cg.freezerV2 = top, true
			if err := cg.v2Limits(ctrls, mode == cgroupV2Split && len(want) > 0); err != nil {
				return fail(append(ctrls, want...)[0], err)
			}
		}
	}
	for _, h := range order {
		if h.V2 {
			continue
		}
		ctrls := byHierarchy[h]
		top := filepath.Join(h.Caller, name)
		work := filepath.Join(top, "workload")
		for _, d := range []string{top, work} {
			if err := cg.mkdir(d); err != nil {
				return fail(ctrls[0], err)
			}
		}
		cg.v1Top = append(cg.v1Top, top)
		cg.v1Workload = append(cg.v1Workload, work)
		for _, ctrl := range ctrls {
			if err := cgroupdir.SetLimit(work, false, ctrl, cfg); err != nil {
				return fail(ctrl, err)
			}
		}
		if h.Controllers["freezer"] && cg.freezer == "" {
			cg.freezer = top
		}
		if slices.Contains(ctrls, "memory") {
			cg.memory = work
		}
		if slices.Contains(ctrls, "pids") {
			cg.pids = work
		}
	}
	if cg.freezer == "" {
		cg.v1Freezer(hs, name)
	}
	return cg, nil
}

// v2Limits sets the limits v2 holds (ctrls): memory on S, the threaded
// controllers on a threaded S/workload, which split makes even without
// them.
func (cg *cgroup) v2Limits(ctrls []string, split bool) error {
	var threaded []string
	for _, ctrl := range ctrls {
		if ctrl != "memory" {
			threaded = append(threaded, ctrl)
			continue
		}
		if err := cgroupdir.SetLimit(cg.v2Top, true, ctrl, cg.cfg); err != nil {
			return err
		}
		cg.memory, cg.v2mem = cg.v2Top, true
	}
	if len(threaded) == 0 && !split {
		return nil
	}
	work := filepath.Join(cg.v2Top, "workload")
	if err := cg.mkdir(work); err != nil {
		return err
	}
	if err := cgroupdir.WriteFile(work, "cgroup.type", "threaded"); err != nil {
		return err
	}
	if err := cgroupdir.EnableIn(cg.v2Top, threaded); err != nil {
		return err
	}
	for _, ctrl := range threaded {
		if err := cgroupdir.SetLimit(work, true, ctrl, cg.cfg); err != nil {
			return err
		}
		if ctrl == "pids" {
			cg.pids = work
		}
	}
	cg.v2Workload = work
	return nil
}

// v1Freezer gives the sandbox a cgroup in the v1 freezer hierarchy, when
// there is one and no v2 hierarchy served; it records why not otherwise.
func (cg *cgroup) v1Freezer(hs []cgroupdir.Hierarchy, name string) {
	var h *cgroupdir.Hierarchy
	for i := range hs {
		if !hs[i].V2 && hs[i].Controllers["freezer"] {
			h = &hs[i]
		}
	}
	if h == nil {
		if cg.noFreezer == nil {
			cg.noFreezer = errors.New("this host has neither cgroup v2 nor the cgroup v1 freezer controller")
		}
		return
	}
	top := filepath.Join(h.Caller, name)
	if err := cg.mkdir(top); err != nil {
		err = fmt.Errorf("cgroup v1 freezer: %w", err)
		if cg.noFreezer != nil {
			err = fmt.Errorf("%v; %w", cg.noFreezer, err)
		}
		cg.noFreezer = err
		return
	}
	cg.v1Top = append(cg.v1Top, top)
	cg.freezer = top
}

func optionName(ctrl string) string {
	switch ctrl {
	case "memory":
		return "WithMemoryMB"
	case "cpu":
		return "WithCPUs"
	}
	return "WithPidsLimit"
}

// mkdir creates a cgroup directory, to be removed with the cgroup.
func (cg *cgroup) mkdir(dir string) error {
	if err := cgroupdir.Mkdir(dir); err != nil {
		return err
	}
	cg.dirs = append(cg.dirs, dir)
	return nil
}

// oomKilled reports whether the kernel killed a process for memory.
func (cg *cgroup) oomKilled() bool { return cg.oomKills() > 0 }

// oomKills returns how many processes the kernel killed for memory.
func (cg *cgroup) oomKills() int {
	if cg == nil || cg.memory == "" {
		return 0
	}
	return cgroupdir.OOMKills(cg.memory, cg.v2mem)
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
		cgroupdir.Remove(cg.dirs[i])
	}
	cg.dirs = nil
}
