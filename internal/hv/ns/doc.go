// Package ns is the Linux-namespace backend: each sandbox is the agent
// (internal/agent) re-executed from the host binary into new user, mount,
// pid, network, uts, ipc and cgroup namespaces, over an overlayfs root of
// the image's layers with a private writable layer on the host.
//
// Every sandbox also gets a cgroup nested under the caller's own, through
// which the host freezes it (Freeze, hv.Freezer) and, below the agent's,
// one that holds its limits and its commands; see cgroup_linux.go.
//
// The host talks to the agent over connections passed through an ipc
// channel (a socket pair inherited at start), so no socket path exists and
// descriptors flow both ways. The agent dies with its host: it has
// PR_SET_PDEATHSIG, and it exits when the host's control connection closes.
package ns
