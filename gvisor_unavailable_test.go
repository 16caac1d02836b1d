//go:build !gvisor

package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestGVisorUnavailable: a program that does not import the opt-in package
// gvisor and has no runsc gets an error from New that says how to get one.
// (make test-gvisor runs the backend itself.)
func TestGVisorUnavailable(t *testing.T) {
	t.Setenv("CC_RUNSC", "")
	t.Setenv("PATH", t.TempDir())
	_, err := New(context.Background(), HostImage(), WithCacheDir(testCache), WithBackend(BackendGVisor))
	if !errors.Is(err, ErrHypervisorUnavailable) || !strings.Contains(err.Error(), `import _ "github.com/ccsandbox/sandbox/gvisor"`) ||
		!strings.Contains(err.Error(), "CC_RUNSC") {
		t.Errorf("New on gVisor without runsc: %v", err)
	}
}
