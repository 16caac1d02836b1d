package hv

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// AsLimit returns err as a *LimitError when it is one of the errors a
// limit gives (too many open files, in this process or in the system),
// and err itself otherwise. Errors of a clone, whose causes are more, go
// through CloneLimit.
func AsLimit(err error) error {
	var le *LimitError
	switch {
	case err == nil, errors.As(err, &le):
		return err
	case errors.Is(err, syscall.EMFILE):
		var lim syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		return &LimitError{Limit: "RLIMIT_NOFILE", Value: strconv.FormatUint(lim.Cur, 10), Err: err}
	case errors.Is(err, syscall.ENFILE):
		return &LimitError{Limit: "fs.file-max", Value: sysctl("fs/file-max"), Err: err}
	}
	return err
}

// CloneLimit returns the error of a clone into new namespaces as a
// *LimitError naming the limit it met, or nil when err is no limit's:
// EAGAIN (tasks: kernel.threads-max, kernel.pid_max, RLIMIT_NPROC, or the
// pids cgroup of this process), ENOSPC and EUSERS (namespaces:
// user.max_*_namespaces), EMFILE and ENFILE (descriptors).
func CloneLimit(err error) *LimitError {
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return &LimitError{Limit: tasksLimit(), Err: err}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EUSERS):
		name, value := "user.max_user_namespaces", sysctl("user/max_user_namespaces")
		for _, ns := range []string{"user", "mnt", "pid", "net", "uts", "ipc", "cgroup"} {
			if v := sysctl("user/max_" + ns + "_namespaces"); v == "0" {
				name, value = "user.max_"+ns+"_namespaces", v
				break
			}
		}
		return &LimitError{Limit: name, Value: value, Err: err}
	}
	var le *LimitError
	if errors.As(AsLimit(err), &le) {
		return le
	}
	return nil
}

// tasksLimit names the limit a clone that failed with EAGAIN most likely
// met: the system's task count near kernel.threads-max or kernel.pid_max,
// else this user's RLIMIT_NPROC when it is finite, else the pids cgroup.
func tasksLimit() string {
	tasks := 0
	if b, err := os.ReadFile("/proc/loadavg"); err == nil { // "0.00 0.01 0.05 1/123 456"
		if f := strings.Fields(string(b)); len(f) >= 4 {
			if _, total, ok := strings.Cut(f[3], "/"); ok {
				tasks, _ = strconv.Atoi(total)
			}
		}
	}
	near := func(limit string) bool {
		n, err := strconv.Atoi(limit)
		return err == nil && tasks >= n*9/10
	}
	if v := sysctl("kernel/threads-max"); near(v) {
		return "kernel.threads-max (" + v + ")"
	}
	if v := sysctl("kernel/pid_max"); near(v) {
		return "kernel.pid_max (" + v + ")"
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(unix.RLIMIT_NPROC, &lim) == nil && lim.Cur != ^uint64(0) && os.Geteuid() != 0 {
		return "RLIMIT_NPROC (" + strconv.FormatUint(lim.Cur, 10) + ")"
	}
	return "pids.max of this process's cgroup, or kernel.pid_max / kernel.threads-max"
}

// sysctl returns the value of /proc/sys/name, or "" when it cannot be read.
func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
