// Package gvisor is the gVisor backend: each sandbox runs on gVisor's
// user-space kernel (runsc), which implements Linux's system calls itself,
// so the workload never calls the host kernel directly. It needs no
// virtualisation: the systrap platform runs everywhere, the KVM platform
// where a usable /dev/kvm is there.
//
// # Vocabulary
//
//   - runsc: gVisor's OCI runtime. It comes from CC_RUNSC, else $PATH, else
//     the program itself when it imports the opt-in package
//     github.com/ccsandbox/sandbox/gvisor, which links runsc in and
//     re-executes the program in runsc's role;
//   - sentry: gVisor's kernel, one process per sandbox on the host;
//   - gofer: the host process that serves the sandbox's host files;
//   - launcher: the host binary re-executed (marker launchEnv) in the
//     sandbox's own user, mount and pid namespaces, where it prepares the
//     bundle and becomes runsc (execve); a runsc under /run cannot be
//     used, as the launcher mounts its workspace there;
//   - agent root: the read-only directory runsc gets as the sandbox's
//     first root: the agent's binary, its configuration, the image.
//
// # How a sandbox starts
//
// Start picks runsc and the platform, then starts the launcher in a user
// namespace that maps ids as the namespace backend does (the layers'
// owners appear as the ids they stand for), with new mount, pid, network,
// ipc and uts namespaces. The host sends it, over a socket, its own
// binary, the layers and the bind sources, opened through the launcher's
// /proc/PID/root (bind mounts and overlayfs take nothing from another
// mount namespace). The launcher mounts a /proc of its pid namespace
// (runsc re-executes itself through /proc/self/exe, which the host's /proc
// refuses from there) and a tmpfs over /run, where it builds the image
// (the layers merged read-only by the host kernel's overlayfs), the agent
// root with the host binary bind-mounted as its agent, the bind mounts,
// and the OCI bundle. It then execs runsc run with the agent as the
// container's process and two sockets passed in (runsc --pass-fd): the
// channel, on which the agent answers "ok" and then serves yamux streams
// exactly as a VM's agent does on its port, and the egress frames.
// Inside, the agent mounts a tmpfs of gVisor's as the writable layer, an
// overlay of gVisor's over the image, and pivots into it
// (agent.ModeGVisor).
//
// Everything lives in the launcher's namespaces: when it dies (Stop kills
// it; it gets PR_SET_PDEATHSIG) the kernel kills every process of its pid
// namespace, the sentry and the gofer included, and the mounts go with
// its mount namespace. Nothing is left on the host but the cgroup of the
// limits, which Stop removes (if the host is killed, the next sandbox start
// sweeps it: see cgroupdir).
//
// # Why runsc fails with "error executing umounter"
//
// runsc built by go install on a machine with a C compiler is linked
// dynamically (cgo is on, and some of its packages use it). Its sandbox
// process pivots into an empty tmpfs and then re-executes itself through
// /proc/self/exe (the "umounter", and the capability drop); the kernel
// then looks for the ELF interpreter, /lib64/ld-linux-x86-64.so.2, in
// that empty root and execve fails with ENOENT, which runsc reports as
// "fork/exec /proc/self/exe: no such file or directory". Nothing is wrong
// with the kernel or the machine: a static runsc (CGO_ENABLED=0 go
// install gvisor.dev/gvisor/runsc@VERSION, as gVisor's own builds are)
// works, as root and rootless. The same holds for a program that links
// runsc in: it must be built with CGO_ENABLED=0, and Start says so when it
// is not. The agent itself may be linked dynamically: its interpreter and
// libraries are mounted into the agent root.
//
// # Limits, snapshots, egress
//
// WithPidsLimit is gVisor's own pids controller inside the sandbox (the
// host sees only the sentry's threads): the agent mounts it as gVisor's
// only v1 hierarchy (runsc --in-sandbox-cgroup=v2 mounts none of its own;
// with several, gVisor checks only some forks against the limit) and starts
// every command in a cgroup under it, while it stays out of the limit
// itself, as on the namespace backend. gVisor uncharges a task when it
// exits, not when it is reaped: zombies do not count against the limit. Memory and CPU limits are a host
// cgroup around the launcher, and so around the whole sandbox, nested
// under the caller's own cgroup as the namespace backend's are: gVisor has
// no out-of-memory killer of its own, so a sandbox over its memory limit
// is killed as a whole, and Err then matches ipc.ErrOutOfMemory.
// WithDiskMB sizes the writable layer's tmpfs. The writable layer lives
// inside gVisor: a snapshot asks the agent to stream it as a layer tar,
// which the host checks as an untrusted layer (as for a VM). Egress
// frames travel over a datagram socket pair between the host's egress
// stack and a TAP device the agent creates in gVisor's network stack.
package gvisor
