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
//   - share: a host directory the guest mounts over virtio-9p (see
//     "Why virtio-9p" below);
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
// # Snapshots and egress
//
// The writable layer lives on the guest's ext4 disk
// (Capabilities.HostUpperDir is false): a snapshot asks the agent to
// stream the upper directory's changes as a layer tar (MsgFsSnapshot),
// which the host checks like any untrusted layer. A VM started with egress
// gets a virtio NIC whose frames travel over a datagram socket pair
// (QEMU's dgram netdev) to the same user-space stack and dialer as the
// namespace backend's TAP device.
//
// # Why virtio-9p and not virtio-fs
//
// Measured with BenchmarkGuestShare (a read-only share mounted with the
// cache an immutable layer allows; TCG on 2 vCPUs, Debian's 6.1 kernel;
// go test -run '^$' -bench GuestShare -benchtime 2x ./internal/hv/vm):
//
//	                        9p       virtio-fs
//	boot to mounted share   1656 ms  1476 ms
//	read a 64 MiB file       240 ms   195 ms
//	ls -lR of 1000 files     401 ms    99 ms
//	exec a binary 100 times  432 ms   358 ms
//
// virtio-fs is faster, most of all for metadata (4x for the listing), so
// 9p is the simpler choice, not the faster one: it needs nothing beyond
// QEMU, which shares each layer by itself. virtio-fs needs a virtiofsd
// process per share, all guest memory as a shared memfd that every daemon
// maps, and daemons that run where QEMU runs, in the VM's unprivileged
// user namespace (the benchmark runs QEMU 7.2's C virtiofsd as host root;
// inside a user namespace it is untested). One daemon over the whole
// layer store would show each guest every other image's layers. The way
// there is one virtiofsd per VM, in its user namespace, over a directory
// of bind-mounted layers: the next step for file-heavy VM workloads.
package vm
