package agent

import "errors"

// runVM is the agent's life as /init of a virtual machine.
func runVM() error {
	return errors.New("the VM agent is not implemented yet")
}
