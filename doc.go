// Package sandbox runs work in isolated Linux environments made from OCI
// images, and lets a Go program touch them with the standard library's own
// shapes.
//
// # Overview
//
// A program starts an [Instance] from an image, snapshot or build result and
// then uses it the way it would use the local machine:
//
//   - files: an Instance is an fs.FS (also fs.StatFS, fs.ReadFileFS,
//     fs.ReadDirFS, fs.ReadLinkFS) with os-shaped write calls, whose errors
//     are *fs.PathError values;
//   - commands: Instance.Command returns a *Cmd shaped like exec.Cmd;
//   - network: Instance.Listen and Instance.Dial return real net.Listener and
//     net.Conn values bound inside the sandbox's own network;
//   - state: Instance.Snapshot freezes the filesystem; new sandboxes fork
//     from the snapshot; Build runs Dockerfiles over snapshots;
//   - start latency: a [Pool] keeps sandboxes started ahead of need, so its
//     New hands one out at once.
//
// # Architecture
//
// The public package drives an isolation backend either in process or
// through an out-of-process helper (see internal/ipc.UseHelper and the
// CC_USE_HELPER environment variable); both paths behave the same. Inside
// every sandbox an agent (the host program itself, re-executed) serves file,
// command and network operations over the protocol of internal/ipc, and
// hands the host real file descriptors where the transport allows, so that
// I/O runs at native speed.
//
// # Errors
//
// Sentinel errors ([ErrNotRunning], [ErrAlreadyClosed], [ErrTimeout],
// [ErrHypervisorUnavailable], [ErrInvalidHandle], [ErrCancelled]) match
// with errors.Is in both routing modes, as do fs.ErrNotExist and the other
// io/fs, io and context errors.
package sandbox
