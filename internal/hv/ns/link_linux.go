package ns

import (
	"fmt"
	"os"
	"runtime"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/netutil"
	"golang.org/x/sys/unix"
)

// OpenLink creates a TAP device named ifname in the sandbox's network
// namespace and returns the host's descriptor of it. A TAP device belongs
// to the namespace of the process that opened /dev/net/tun, so the host
// (which may open the device, and may enter the sandbox's namespace: it
// runs as root) opens it from a thread that has entered the sandbox's
// network namespace. Without root it returns hv.ErrLinkViaAgent.
func (s *sandbox) OpenLink(ifname string) (*os.File, error) {
	if os.Geteuid() != 0 {
		return nil, hv.ErrLinkViaAgent
	}
	var target *os.File
	err := s.proc.WithPid(func(pid int) (err error) {
		target, err = os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the sandbox's network namespace: %w", err)
	}
	defer target.Close()

	type result struct {
		f   *os.File
		err error
	}
	res := make(chan result, 1)
	// A thread that fails to come back to the host's namespace must die
	// with its goroutine: the goroutine never unlocks it then.
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		defer home.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, fmt.Errorf("entering the sandbox's network namespace: %w", err)}
			return
		}
		f, err := netutil.OpenTap("/dev/net/tun", ifname)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		res <- result{f, err}
	}()
	r := <-res
	return r.f, r.err
}
