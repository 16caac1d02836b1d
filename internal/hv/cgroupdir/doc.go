// Package cgroupdir places sandboxes' cgroups on the host, for every
// backend that makes them: under the caller's own cgroup in each
// hierarchy, named after the process that made them, and swept once that
// process is gone.
//
// # Vocabulary
//
//   - hierarchy: one mounted cgroup tree, v2 (unified) or v1 (one per
//     controller or group of controllers); a host may have both (hybrid);
//   - caller: this process's cgroup in a hierarchy, the parent of every
//     sandbox cgroup made there, so that a sandbox never escapes the
//     limits of the container or systemd unit its caller runs in;
//   - sandbox cgroup: <caller>/cc-sandbox.PID.START.ID (see Name), the
//     top of one sandbox's cgroups in a hierarchy; what a backend puts
//     below it is its own;
//   - owner: the process, named by PID and START, that made a sandbox
//     cgroup; a sandbox cgroup whose owner is gone is a leftover, which
//     the first sandbox start of every process removes (see SweepOnce).
package cgroupdir
