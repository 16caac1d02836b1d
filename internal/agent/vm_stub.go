//go:build !linux

package agent

import "errors"

// runVM: virtual machines run Linux guests only.
func runVM() error {
	return errors.New("the VM agent is not implemented yet")
}
