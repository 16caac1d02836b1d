package agent

import (
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/hv"
)

// TracePrefix starts the status line on which an agent whose Config asks
// for a trace reports its phases, before its "ok": tab-separated
// name=time pairs, each time the hv.Monotonic nanosecond the phase ended.
const TracePrefix = "trace\t"

// phase ends the traced phase name now, when c asks for a trace.
func (c *Config) phase(name string) {
	if c.Trace {
		c.phaseAt(name, hv.Monotonic())
	}
}

// phaseAt records that the phase name ended at the Monotonic time at.
func (c *Config) phaseAt(name string, at int64) {
	c.phases = append(c.phases, name+"="+strconv.FormatInt(at, 10))
}

// traceLine returns the line that reports c's phases, or "" when c asks
// for no trace.
func (c *Config) traceLine() string {
	if !c.Trace {
		return ""
	}
	return TracePrefix + strings.Join(c.phases, "\t") + "\n"
}

// ParsePhases calls mark with each phase of a trace line's rest (after
// TracePrefix) and the Monotonic time it ended; it skips malformed pairs
// (the line comes from inside a sandbox).
func ParsePhases(rest string, mark func(name string, at int64)) {
	if rest == "" {
		return
	}
	for _, pair := range strings.Split(strings.TrimSpace(rest), "\t") {
		name, at, ok := strings.Cut(pair, "=")
		n, err := strconv.ParseInt(at, 10, 64)
		if ok && err == nil && len(name) <= 32 {
			mark(name, n)
		}
	}
}
