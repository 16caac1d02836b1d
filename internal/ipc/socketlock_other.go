//go:build !linux

package ipc

import "os"

// Only Linux keeps lock files beside helper sockets (see
// socketlock_linux.go); elsewhere there is nothing to lock or sweep.

func lockSocket(socketPath string) (*os.File, error) { return nil, nil }

func unlockSocket(socketPath string, lock *os.File) {}

// RemoveStaleSockets does nothing on this system.
func RemoveStaleSockets() {}
