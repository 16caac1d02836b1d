package fsutil

import (
	"strconv"
	"strings"
)

// UnescapeMountinfo undoes the octal escapes /proc/PID/mountinfo writes
// in paths (\040 for a space, \134 for a backslash); anything else is
// kept as it is.
func UnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
