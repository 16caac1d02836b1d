package ns

import (
	"testing"

	"github.com/ccsandbox/sandbox/internal/hv/hvtest"
)

func TestConformance(t *testing.T) {
	hvtest.Run(t, hvtest.Harness{Backend: Backend{}, BaseLayer: hvtest.BusyboxLayer})
}
