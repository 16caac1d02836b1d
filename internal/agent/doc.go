// Package agent is the process that runs inside every sandbox as its first
// process (PID 1). It is the host program itself, re-executed with
// [EnvMarker] in its environment: importing this package installs an init
// function that recognises the marker, runs the agent and exits, so users
// need no second binary.
//
// # What it does
//
// Before anything else it starts a session of its own (the host program's
// controlling terminal stays out of the sandbox) and closes the descriptors
// the host program inherited. Then it reads its [Config], builds the
// sandbox's root (overlay of the image layers, host mounts nosuid and
// nodev and, when read-only, read-only all the way down, /proc, /sys, a
// minimal /dev, /etc/hosts and friends), pivots into it, brings up the
// loopback interface, and then serves the protocol of internal/ipc on the
// connections its host opens: file operations, file handles, commands and
// (later) the network. Every path a request names is resolved by the
// kernel inside the sandbox's own root with openat2, refusing magic links
// (see resolve_linux.go), so no symlink can lead a request to a host file
// or to one of the agent's own descriptors. Every command starts a session
// of its own. As PID 1 it reaps every orphan.
//
// Where the connection is a Unix socket, answers carry real descriptors:
// an opened file, a pty master; command stdio travels over descriptors the
// host sends. Otherwise the handle-based messages and streams serve the
// same operations.
//
// # How a command's exit reaches the host
//
// A command costs about as much as process creation itself, so its path
// has as few thread wake-ups as the design allows: the process is forked
// on whichever thread handles the request (each thread has its
// capabilities cut the first time it forks, see harden); MsgCmdRun starts
// it and answers at its exit in one exchange; and the handler's own thread
// waits for the exit on the process's pidfd (ipc.Request.AwaitReadable),
// where SIGCHLD would pass through the runtime's signal goroutine and the
// reaper first. SIGCHLD still reaps orphans, and whichever sees an exit
// first reaps the process.
//
// The agent exits when its host's control connection closes, which takes
// every process of the sandbox with it.
package agent
