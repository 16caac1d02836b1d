package sandbox

import (
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// LimitError is what New returns when starting a sandbox met a limit of
// the kernel or of this process (too many tasks, user namespaces or open
// files): its Limit names what to raise ("kernel.pid_max",
// "user.max_user_namespaces", "RLIMIT_NOFILE", ...), and errors.Is still
// matches the system's error (EAGAIN, ENOSPC, EMFILE). Match it with
// errors.As.
type LimitError = hv.LimitError

// Sentinel errors. Each matches, with errors.Is, the errors the SDK returns
// for that condition, whether the sandbox runs in process or behind the
// helper.
var (
	// ErrNotRunning: the instance or the command has stopped.
	ErrNotRunning = ipc.ErrNotRunning
	// ErrAlreadyClosed: the object was closed before the call.
	ErrAlreadyClosed = ipc.ErrAlreadyClosed
	// ErrTimeout: the instance reached the time limit set by WithTimeout.
	ErrTimeout = ipc.ErrTimeout
	// ErrHypervisorUnavailable: the isolation backend cannot run on this
	// host; the wrapping error names the missing feature and how to get it.
	ErrHypervisorUnavailable = ipc.ErrHypervisorUnavailable
	// ErrInvalidHandle: a handle names no open object.
	ErrInvalidHandle = ipc.ErrInvalidHandle
	// ErrCancelled: the operation was cancelled.
	ErrCancelled = ipc.ErrCancelled
	// ErrOutOfMemory: the kernel killed the process (or the whole
	// sandbox) for exceeding the memory limit of WithMemoryMB.
	ErrOutOfMemory = ipc.ErrOutOfMemory
)
