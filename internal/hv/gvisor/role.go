package gvisor

import "strings"

// runscArgv0 is the argv[0] the launcher gives the program in runsc's
// role.
const runscArgv0 = "runsc"

// IsRunsc reports whether a process with the command line args was started
// in runsc's role, for a program that links runsc in (the opt-in package
// gvisor): by a launcher (argv[0] "runsc"), or by runsc re-executing its
// own binary (argv[0] "runsc-sandbox", "runsc-gofer" and the like, or
// /proc/self/exe for its "umount" helper).
func IsRunsc(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch a0 := args[0]; {
	case a0 == runscArgv0, strings.HasPrefix(a0, runscArgv0+"-"):
		return true
	case a0 == "/proc/self/exe":
		return len(args) > 2 && args[1] == "umount" && strings.HasPrefix(args[2], "--sync-fd=")
	}
	return false
}
