package gvisor

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/ipc"
)

// TestNoRunsc: without a runsc, Start says how to get one.
func TestNoRunsc(t *testing.T) {
	t.Setenv("CC_RUNSC", "")
	t.Setenv("PATH", t.TempDir())
	_, err := Backend{}.Start(context.Background(), &hv.Config{ID: "x", StateDir: t.TempDir(), IDMap: idmap.Current()})
	if !errors.Is(err, ipc.ErrHypervisorUnavailable) || !strings.Contains(err.Error(), `import _ "github.com/ccsandbox/sandbox/gvisor"`) ||
		!strings.Contains(err.Error(), "CC_RUNSC") {
		t.Errorf("Start without runsc: %v", err)
	}
}

// TestDynamicRunsc: a dynamically linked runsc fails inside its own
// sandbox (see the package documentation); Start refuses it up front and
// says how to build one that works. /bin/true stands in for it.
func TestDynamicRunsc(t *testing.T) {
	if interp, err := interpreter("/bin/true"); err != nil || interp == "" {
		t.Fatalf("/bin/true is not linked dynamically here (%q, %v): the test needs a dynamic binary", interp, err)
	}
	t.Setenv("CC_RUNSC", "/bin/true")
	_, err := Backend{}.Start(context.Background(), &hv.Config{ID: "x", StateDir: t.TempDir(), IDMap: idmap.Current()})
	if !errors.Is(err, ipc.ErrHypervisorUnavailable) || !strings.Contains(err.Error(), "linked dynamically") ||
		!strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("Start with a dynamic runsc: %v", err)
	}
	t.Setenv("CC_RUNSC", "/no/such/runsc")
	if _, err := findRunsc(false); !errors.Is(err, ipc.ErrHypervisorUnavailable) || !strings.Contains(err.Error(), "/no/such/runsc") {
		t.Errorf("a missing CC_RUNSC: %v", err)
	}
}

func TestIsRunsc(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"runsc", "--root=/x", "run", "id"}, true},
		{[]string{"runsc-gofer", "gofer"}, true},
		{[]string{"runsc-sandbox", "boot"}, true},
		{[]string{"/proc/self/exe", "umount", "--sync-fd=3", "/proc"}, true},
		{[]string{"/proc/self/exe", "umount"}, false},
		{[]string{"/usr/bin/myprogram", "runsc"}, false},
		{[]string{"/.cc/agent"}, false},
		{nil, false},
	} {
		if got := IsRunsc(tc.args); got != tc.want {
			t.Errorf("IsRunsc(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

// TestPlatform: CC_GVISOR_PLATFORM chooses, a bad value is an error, and
// without it a host whose /dev/kvm is unusable gets systrap.
func TestPlatform(t *testing.T) {
	t.Setenv("CC_GVISOR_PLATFORM", "ptrace")
	if p, err := platform(idmap.Current()); err != nil || p != "ptrace" {
		t.Errorf("CC_GVISOR_PLATFORM=ptrace: %q %v", p, err)
	}
	t.Setenv("CC_GVISOR_PLATFORM", "tcg")
	if _, err := platform(idmap.Current()); err == nil {
		t.Error("CC_GVISOR_PLATFORM=tcg accepted")
	}
	t.Setenv("CC_GVISOR_PLATFORM", "")
	p, err := platform(idmap.Current())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: "kvm", false: "systrap"}[hv.KVMOpen(idmap.Current()) && kvmUsable()]; p != want {
		t.Errorf("platform %q, want %q", p, want)
	}
	t.Logf("platform here: %s", p)
}
