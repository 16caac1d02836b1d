package ns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/hv/cgroupdir"
	"golang.org/x/sys/unix"
)

var _ hv.Freezer = (*sandbox)(nil)

// Freeze stops every process of the sandbox, the agent's included, and
// returns once all are frozen (hv.Freezer): through cgroup v2's
// cgroup.freeze, or the v1 freezer controller. New processes are born
// frozen, so a fork loop cannot outrun it. It returns an error wrapping
// errors.ErrUnsupported, naming what is missing, when the sandbox has no
// freezer cgroup (an unprivileged user on cgroup v1, say), and ctx's error
// (the sandbox thawed again) when ctx ends first.
func (s *sandbox) Freeze(ctx context.Context) error {
	cg := s.cgroup
	if cg.freezer == "" {
		why := cg.noFreezer
		if why == nil {
			why = errors.New("no freezer cgroup")
		}
		return fmt.Errorf("freezing sandbox %s: no freezer cgroup: %v: %w", s.cfg.ID, why, errors.ErrUnsupported)
	}
	var err error
	if cg.freezerV2 {
		err = freezeV2(ctx, cg.freezer)
	} else {
		err = freezeV1(ctx, cg.freezer)
	}
	if err != nil {
		s.Thaw()
		return fmt.Errorf("freezing sandbox %s: %w", s.cfg.ID, err)
	}
	return nil
}

// Thaw lets the sandbox's processes run again (hv.Freezer).
func (s *sandbox) Thaw() error {
	cg := s.cgroup
	switch {
	case cg.freezer == "":
		return fmt.Errorf("thawing sandbox %s: no freezer cgroup: %w", s.cfg.ID, errors.ErrUnsupported)
	case cg.freezerV2:
		return cgroupdir.WriteFile(cg.freezer, "cgroup.freeze", "0")
	}
	return cgroupdir.WriteFile(cg.freezer, "freezer.state", "THAWED")
}

// thawV1 thaws a sandbox frozen by the v1 freezer, whose tasks could not
// die otherwise; v2 lets frozen tasks die.
func (cg *cgroup) thawV1() {
	if cg.freezer != "" && !cg.freezerV2 {
		cgroupdir.WriteFile(cg.freezer, "freezer.state", "THAWED")
	}
}

// freezeV2 freezes the v2 cgroup dir and waits until cgroup.events says
// "frozen 1". The kernel wakes pollers of the file when it changes, but
// rate-limits those wakeups (10 ms), while a sandbox of sleeping processes
// freezes in microseconds: so the wait polls with a short timeout that
// grows, whichever comes first.
func freezeV2(ctx context.Context, dir string) error {
	events, err := os.Open(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return err
	}
	defer events.Close()
	if err := cgroupdir.WriteFile(dir, "cgroup.freeze", "1"); err != nil {
		return err
	}
	buf := make([]byte, 256)
	wait := 50 * time.Microsecond
	for {
		n, err := unix.Pread(int(events.Fd()), buf, 0)
		if err != nil {
			return fmt.Errorf("reading %s: %w", events.Name(), err)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == "frozen 1" {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(events.Fd()), Events: unix.POLLPRI}}
		ts := unix.NsecToTimespec(wait.Nanoseconds())
		if _, err := unix.Ppoll(fds, &ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("waiting for %s: %w", events.Name(), err)
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}

// freezeV1 freezes the v1 freezer cgroup dir and waits until its state
// reads FROZEN (it reads FREEZING while tasks are still being stopped).
func freezeV1(ctx context.Context, dir string) error {
	if err := cgroupdir.WriteFile(dir, "freezer.state", "FROZEN"); err != nil {
		return err
	}
	wait := 100 * time.Microsecond
	for {
		b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == "FROZEN" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}
