package gvisor_test

import (
	"testing"

	_ "github.com/ccsandbox/sandbox/gvisor"
	"github.com/ccsandbox/sandbox/internal/hv/gvisor"
	"github.com/ccsandbox/sandbox/internal/hv/hvtest"
)

func TestConformance(t *testing.T) {
	hvtest.Run(t, hvtest.Harness{Backend: gvisor.Backend{SelfRunsc: true}, BaseLayer: hvtest.BusyboxLayer})
}
