//go:build !linux

package agent

import "errors"

// run: the agent runs only inside Linux sandboxes.
func run() error {
	return errors.New("the sandbox agent runs only on Linux")
}
