// Package gvisor links gVisor's runsc into the program and makes the
// gVisor backend available with nothing else to install: import it for
// its side effect,
//
//	import _ "github.com/ccsandbox/sandbox/gvisor"
//
// and start sandboxes with sandbox.WithBackend(sandbox.BackendGVisor).
// The program then re-executes itself in runsc's role (this package's init
// recognises the role and never returns there). A runsc named by CC_RUNSC
// or found on $PATH is used instead when there is one.
//
// runsc moves into an empty root before it re-executes itself, so a program
// that imports this package must be linked statically: build it with
// CGO_ENABLED=0 (New says so otherwise). Linking runsc in adds about
// 90 MB to the binary; programs that do not import this package do not pay
// it (the backend then needs a runsc of its own).
package gvisor
