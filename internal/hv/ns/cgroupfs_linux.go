package ns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// hierarchy is one mounted cgroup hierarchy, and where this process sits
// in it.
type hierarchy struct {
	mount       string
	v2          bool
	controllers map[string]bool // v1: those of the mount; v2: those the caller's cgroup offers
	// caller is this process's cgroup in the hierarchy, as a directory
	// under mount: the parent of every sandbox cgroup made here.
	caller string
}

// hostLeaf names the leaf cgroup this process moves itself into when it
// must enable cgroup v2 controllers in its own cgroup (see enableIn).
const hostLeaf = "cc-host"

// hierarchies lists the cgroup hierarchies mounted in this mount namespace
// that contain this process's cgroup, with that cgroup in each. A process
// in a cc-host leaf (see enableIn) counts as being in its parent.
func hierarchies() ([]hierarchy, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
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
		if len(fields) < 5 || len(tail) < 3 || (tail[0] != "cgroup" && tail[0] != "cgroup2") {
			continue
		}
		root, mount := unescapeMountinfo(fields[3]), unescapeMountinfo(fields[4])
		if seen[mount] {
			continue
		}
		h := hierarchy{mount: mount, v2: tail[0] == "cgroup2", controllers: map[string]bool{}}
		var path string
		if h.v2 {
			path, ok = own[""]
		} else {
			for _, o := range strings.Split(tail[2], ",") {
				if p, found := own[o]; found {
					h.controllers[o] = true
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
		h.caller = filepath.Join(mount, rel)
		if filepath.Base(h.caller) == hostLeaf {
			h.caller = filepath.Dir(h.caller)
		}
		if h.v2 {
			b, err := os.ReadFile(filepath.Join(h.caller, "cgroup.controllers"))
			if err != nil {
				continue
			}
			for _, c := range strings.Fields(string(b)) {
				h.controllers[c] = true
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

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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

// v2Of returns the cgroup v2 hierarchy, or nil.
func v2Of(hs []hierarchy) *hierarchy {
	for i := range hs {
		if hs[i].v2 {
			return &hs[i]
		}
	}
	return nil
}

// writeCgroupFile writes value into a cgroup control file.
func writeCgroupFile(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

// cgroupMkdirError explains a failed mkdir in a cgroup hierarchy.
func cgroupMkdirError(dir string, err error) error {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("this user cannot create cgroups under %s (%v): run as root or give it a delegated cgroup", filepath.Dir(dir), errors.Unwrap(err))
	}
	return err
}

// enableIn enables ctrls for the children of the v2 cgroup dir (this
// process's own). cgroup v2 lets no cgroup but the root both hold
// processes and enable controllers for its children, so when dir holds
// this process, it moves into a leaf below, dir/cc-host, once, as nsjail
// does and as systemd asks of the programs it delegates a cgroup to; the
// sandboxes' cgroups stay below dir, within its limits. It returns an
// error naming the rule when other processes keep dir busy.
func enableIn(dir string, ctrls []string) error {
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
		if !contains(have, c) {
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
		if err := writeCgroupFile(leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
			return err
		}
		moved = true
		err = write()
	}
	if errors.Is(err, syscall.EBUSY) {
		if moved { // go back: it did not help
			writeCgroupFile(dir, "cgroup.procs", strconv.Itoa(os.Getpid()))
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// openTasks opens the "tasks" file of the v1 cgroup dir for writing: a
// thread that writes "0" to it moves into the cgroup alone, without the
// rest of its process (and so without the cost of a process migration).
func openTasks(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "tasks"), os.O_WRONLY|unix.O_CLOEXEC, 0)
}

// joinTasks moves the calling thread into the cgroup whose tasks file is
// f; the caller has locked its goroutine to the thread.
func joinTasks(f *os.File) error {
	if _, err := unix.Pwrite(int(f.Fd()), []byte("0"), 0); err != nil {
		return fmt.Errorf("moving a thread into %s: %w", f.Name(), err)
	}
	return nil
}
