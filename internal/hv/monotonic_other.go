//go:build !linux

package hv

import "time"

var processStart = time.Now()

// Monotonic returns a monotonic time in nanoseconds (this process's own
// clock: no other system runs agents that report phases).
func Monotonic() int64 { return int64(time.Since(processStart)) }
