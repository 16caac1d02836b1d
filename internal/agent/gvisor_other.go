//go:build !linux

package agent

import "errors"

// runGVisor: gVisor runs Linux sandboxes on Linux hosts only.
func runGVisor() error {
	return errors.New("the gVisor agent runs only on Linux")
}
