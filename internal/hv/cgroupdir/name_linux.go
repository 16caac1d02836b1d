package cgroupdir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Prefix starts the name of every sandbox cgroup.
const Prefix = "cc-sandbox."

// Name returns the name of the sandbox cgroup of sandbox id, with this
// process as its owner: cc-sandbox.PID.START.ID, where START is when this
// process started (see startTime), so that a later sweep can tell a
// leftover from the cgroup of a live sandbox even once PID is reused.
func Name(id string) string {
	return fmt.Sprintf("%s%d.%d.%s", Prefix, os.Getpid(), ownStart(), id)
}

// owner parses the owner out of a sandbox cgroup's name; ok is false for
// a name Name did not make.
func owner(name string) (pid int, start uint64, ok bool) {
	f := strings.SplitN(strings.TrimPrefix(name, Prefix), ".", 3)
	if len(f) != 3 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

// ownerAlive reports whether process pid runs (a zombie is dead: its
// parent, killed too, may leave it unreaped for a while) and started at
// start.
func ownerAlive(pid int, start uint64) bool {
	got, state, err := startTime(pid)
	return err == nil && got == start && state != "Z" && state != "X"
}

// ownStart returns this process's start time (see startTime).
var ownStart = sync.OnceValue(func() uint64 {
	t, _, _ := startTime(os.Getpid())
	return t
})

// startTime returns when process pid started, in clock ticks after boot
// (field 22 of /proc/PID/stat; with the pid, it names one process for
// good, where a pid alone may be reused), and its state (field 3).
func startTime(pid int) (start uint64, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// The command name, field 2, may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, "", errors.New("malformed stat")
	}
	start, err = strconv.ParseUint(fields[19], 10, 64) // field 22: the 20th after the name
	return start, fields[0], err
}
