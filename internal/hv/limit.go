package hv

import "fmt"

// LimitError reports that starting a sandbox met a limit of the kernel or
// of this process, which Limit names as the administrator would raise it:
// a sysctl ("kernel.pid_max", "user.max_user_namespaces"), a resource
// limit ("RLIMIT_NOFILE"), or a cgroup file. Err is what the system
// returned (EAGAIN, ENOSPC, EMFILE, ENFILE, ...), so errors.Is still
// matches it.
type LimitError struct {
	Limit string // what to raise
	Value string // its value when it was met, "" when unknown
	Err   error
}

func (e *LimitError) Error() string {
	value := ""
	if e.Value != "" {
		value = " (" + e.Value + ")"
	}
	return fmt.Sprintf("%v: the limit %s%s is reached; raise it to start more sandboxes", e.Err, e.Limit, value)
}

func (e *LimitError) Unwrap() error { return e.Err }
