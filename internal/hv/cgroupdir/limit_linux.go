package cgroupdir

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/hv"
)

// SetLimit writes cfg's limit for the controller ctrl (memory, cpu or
// pids) into the cgroup dir of a v2 hierarchy, or of ctrl's v1 one. Swap
// is kept out of a memory limit where the host lets it be. Its error
// names the control file it could not write.
func SetLimit(dir string, v2 bool, ctrl string, cfg *hv.Config) error {
	optional := func(file, value string) {
		os.WriteFile(filepath.Join(dir, file), []byte(value), 0)
	}
	switch ctrl {
	case "memory":
		bytes := strconv.FormatUint(cfg.MemoryMB<<20, 10)
		if v2 {
			optional("memory.swap.max", "0")
			return WriteFile(dir, "memory.max", bytes)
		}
		if err := WriteFile(dir, "memory.limit_in_bytes", bytes); err != nil {
			return err
		}
		optional("memory.memsw.limit_in_bytes", bytes)
	case "cpu":
		const period = 100000
		quota := strconv.Itoa(int(cfg.CPUs * period))
		if v2 {
			return WriteFile(dir, "cpu.max", quota+" "+strconv.Itoa(period))
		}
		if err := WriteFile(dir, "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
			return err
		}
		return WriteFile(dir, "cpu.cfs_quota_us", quota)
	case "pids":
		return WriteFile(dir, "pids.max", strconv.FormatInt(cfg.PidsMax, 10))
	}
	return nil
}

// OOMKills returns how many processes the kernel has killed for memory in
// the cgroup dir, which has the memory controller of a v2 or v1
// hierarchy; 0 when it cannot tell.
func OOMKills(dir string, v2 bool) int {
	file := "memory.oom_control"
	if v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
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
