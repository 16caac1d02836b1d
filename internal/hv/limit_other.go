//go:build !linux

package hv

// AsLimit returns err: only Linux names the limits it meets.
func AsLimit(err error) error { return err }

// CloneLimit returns nil: only Linux clones into namespaces.
func CloneLimit(error) *LimitError { return nil }
