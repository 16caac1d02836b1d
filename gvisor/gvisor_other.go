//go:build !linux

package gvisor

// runsc runs on Linux only: elsewhere the backend's Start says so.
