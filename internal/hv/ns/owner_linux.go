package ns

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"golang.org/x/sys/unix"
)

// The kernel counts some things per user up the chain of user namespaces
// (inotify instances and watches, POSIX message queue bytes, pending
// signals, processes, user namespaces), and charges what a namespace's
// processes hold, in the namespace above, to the namespace's owner: the
// effective uid of the thread that made it. Each count there meets the
// host's per-user limit (fs.inotify.max_user_instances, 128 by default;
// RLIMIT_MSGQUEUE). A sandbox made by a root host program with root's own
// uid drew on root's budget, which every root process of the host (systemd,
// a kubelet) and every other sandbox share: code in one sandbox that held
// 128 inotify instances left none to them.
//
// So when the host program runs as root, each sandbox's user namespace is
// made by a thread that took a uid of the sandbox's own as its effective
// uid alone (its real and saved uids stay root's, and so do its
// capabilities, by SECBIT_NO_SETUID_FIXUP): one of ownerCount uids from
// ownerBase, above the ids sandboxes map, which no process runs as and no
// file has. Two sandboxes share a budget only when their owners meet, one
// time in ownerCount. Root keeps every capability over the namespace (it
// holds them in the namespace above). An unprivileged caller's sandboxes
// are charged to it, as its other processes are: it has no other uid.

// ownerBase is the first host uid that owns sandboxes' user namespaces.
const ownerBase = idmap.RootBase + idmap.RootSize

// ownerCount is how many owner uids there are.
const ownerCount = 1 << 16

// secbitNoSetuidFixup is SECBIT_NO_SETUID_FIXUP (linux/securebits.h): a
// change of uid leaves the thread's capabilities as they are.
const secbitNoSetuidFixup = 1 << 2

var lastOwner atomic.Uint32

func init() { lastOwner.Store(rand.Uint32()) } // processes (a helper and its callers) spread apart

// nextOwner returns the uid that owns the next sandbox's user namespace.
func nextOwner() int { return ownerBase + int(lastOwner.Add(1)%ownerCount) }

// becomeOwner makes the calling thread, which must be locked to its
// goroutine and run as root, act as uid owner: its effective uid (which
// a user namespace it makes takes as owner), nothing else. It returns what
// undoes that, or an error with the thread as it was (errThreadChanged
// when it could not be put back). An error of undo means the thread is
// not itself again: it must end.
func becomeOwner(owner int) (undo func() error, err error) {
	bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits|secbitNoSetuidFixup), 0, 0, 0); err != nil {
		return nil, err
	}
	restoreBits := func() error { return unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0) }
	// The raw call changes this thread alone (Go's Setresuid, all).
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(owner), ^uintptr(0)); e != 0 {
		if err := restoreBits(); err != nil {
			return nil, fmt.Errorf("%w: %v", errThreadChanged, err)
		}
		return nil, e
	}
	return func() error {
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 {
			return e
		}
		return restoreBits()
	}, nil
}

// errThreadChanged says that a thread's credentials could not be put back.
var errThreadChanged = errors.New("the thread's credentials could not be restored")
