//go:build gvisor

package gvisor_test

import (
	"testing"

	_ "github.com/ccsandbox/sandbox/gvisor"
	"github.com/ccsandbox/sandbox/internal/hv/gvisor"
	"github.com/ccsandbox/sandbox/internal/hv/hvtest"
)

// TestConformance runs the backend conformance suite with the test binary
// as runsc (make test-gvisor builds it with the tag gvisor and
// CGO_ENABLED=0).
func TestConformance(t *testing.T) {
	hvtest.Run(t, hvtest.Harness{Backend: gvisor.Backend{SelfRunsc: true}, BaseLayer: hvtest.BusyboxLayer})
}
