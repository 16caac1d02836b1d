package cgroupdir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// hostLeaf names the leaf cgroup this process moves itself into when it
// must enable cgroup v2 controllers in its own cgroup (see EnableIn).
const hostLeaf = "cc-host"

// EnableIn enables ctrls for the children of the v2 cgroup dir (this
// process's own). cgroup v2 lets no cgroup but the root both hold
// processes and enable controllers for its children, so when dir holds
// this process, it moves into a leaf below, dir/cc-host, once, as nsjail
// does and as systemd asks of the programs it delegates a cgroup to; the
// sandboxes' cgroups stay below dir, within its limits. It returns an
// error naming the rule when other processes keep dir busy.
func EnableIn(dir string, ctrls []string) error {
	if len(ctrls) == 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	var missing []string
	have := strings.Fields(string(b))
	for _, c := range ctrls {
		if !slices.Contains(have, c) {
			missing = append(missing, "+"+c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	value := strings.Join(missing, " ")
	write := func() error {
		return os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(value), 0)
	}
	err = write()
	moved := false
	if errors.Is(err, syscall.EBUSY) && holds(dir, os.Getpid()) {
		leaf := filepath.Join(dir, hostLeaf)
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("making the leaf %s for this process: %w", leaf, err)
		}
		if err := WriteFile(leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
			return err
		}
		moved = true
		err = write()
	}
	if errors.Is(err, syscall.EBUSY) {
		if moved { // go back: it did not help
			WriteFile(dir, "cgroup.procs", strconv.Itoa(os.Getpid()))
		}
		procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		return fmt.Errorf("cgroup v2 lets %s, which holds other processes (%s), enable no controllers for sandboxes below it (the no-internal-processes rule): run this program in a cgroup of its own, e.g. with systemd-run --scope -p Delegate=yes",
			dir, strings.Join(strings.Fields(string(procs)), " "))
	}
	if err != nil {
		return fmt.Errorf("enabling %s in %s: %w", value, dir, err)
	}
	return nil
}

// holds reports whether the cgroup dir directly holds process pid.
func holds(dir string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return false
	}
	want := []byte(strconv.Itoa(pid))
	for _, f := range bytes.Fields(b) {
		if bytes.Equal(f, want) {
			return true
		}
	}
	return false
}
