// Package vm is the virtual-machine backend: each sandbox is a QEMU
// virtual machine with its own Linux kernel, whose /init is the agent
// (internal/agent), that is the host binary itself.
//
// # Vocabulary
//
//   - guest: the virtual machine's Linux, with its own kernel;
//   - accelerator: how QEMU runs the guest's code: kvm (Linux with a
//     usable /dev/kvm), hvf (macOS), whpx (Windows), or tcg, QEMU's own
//     emulation, slow but available everywhere;
//   - machine: QEMU's board model: microvm (virtio-mmio devices only,
//     fastest to boot) or q35 (PCI), the fallback;
//   - share: a host directory the guest mounts over virtio-9p;
//   - initramfs: the guest's first root, generated here: /init (the host
//     binary), the kernel modules the guest needs, and for a dynamically
//     linked binary its ELF interpreter and libraries.
//
// # How a sandbox starts
//
// Start finds QEMU and a guest kernel (see findKernel for the order),
// builds or reuses the initramfs (cached by content in the cache
// directory), creates an empty ext4 disk image for the writable layer, and
// starts QEMU in a user namespace that maps the sandbox's ids exactly as
// the namespace backend maps them, so that the layers' owners (host uid
// idmap.RootBase+N) appear as N in the guest, and files the guest creates
// in writable mounts belong to the same host ids as with the namespace
// backend. QEMU's only channel to the host program is a virtio-serial port
// on one end of a socket pair: the agent greets, receives its
// agent.VMConfig, builds the root (overlayfs over the 9p layers with its
// upper directory on the ext4 disk, inside the guest), answers "ok", and
// then serves yamux streams, each one ipc connection. Start returns once
// the agent answered the ipc handshake.
//
// # Life cycle
//
// The VM always stops: Stop and Kill kill QEMU (the guest's disk is
// scratch, nothing to flush); QEMU gets PR_SET_PDEATHSIG so it dies with
// the host program; the agent powers the guest off when the host's control
// connection closes; and a guest kernel panic reboots, which QEMU turns
// into an exit (-no-reboot).
//
// # Seams for later work
//
// Snapshots: the writable layer lives on the guest's ext4 disk
// (Capabilities.HostUpperDir is false); a snapshot asks the agent to
// stream the upper directory's changes (see agent.VMConfig, mountUpper).
// Networking: QEMU gets no network device today; egress will add a
// netdev on a Unix socket to qemuArgs, and the agent's network handlers
// already work over streamed connections.
package vm
