package agent

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// killTree sends sig to the process group of pid and to every descendant of
// pid, repeating while new descendants appear (a process may fork while
// being killed).
func killTree(pid int, sig syscall.Signal) {
	for range 10 {
		victims := descendants(pid)
		unix.Kill(-pid, sig) // the command's own process group
		if alive(pid) {
			victims = append(victims, pid)
		}
		if len(victims) == 0 {
			return
		}
		for _, v := range victims {
			unix.Kill(v, sig)
		}
		if sig != syscall.SIGKILL {
			return
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	return ok && !strings.HasPrefix(rest, "Z")
}

// descendants returns the live descendants of pid, from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		_, rest, ok := strings.Cut(string(b), ") ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// killAll kills every other process in the sandbox: the agent is PID 1.
func killAll() {
	unix.Kill(-1, syscall.SIGKILL)
}
