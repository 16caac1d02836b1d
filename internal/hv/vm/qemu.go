package vm

import (
	"fmt"
	"github.com/ccsandbox/sandbox/internal/agent"
	"strconv"
	"strings"
)

// qemuSpec is everything the QEMU command line says; qemuArgs turns it
// into arguments without touching the host, so tests can check it for
// every accelerator and machine.
type qemuSpec struct {
	Accel    string // kvm, hvf, whpx or tcg
	Machine  string // microvm or q35
	MemoryMB uint64
	CPUs     int
	Kernel   string // paths as QEMU opens them (often /proc/self/fd/N)
	Initrd   string
	Cmdline  string
	// ControlFD is QEMU's descriptor of its end of the control socket,
	// connected to the agent's virtio-serial port.
	ControlFD int
	Shares    []qemuShare
	// DiskFDs are QEMU's descriptors of the writable layer's disk image,
	// opened read-only and read-write (QEMU picks one by access mode),
	// handed over with -add-fd; DiskSerial names it to the guest.
	DiskFDs    [2]int
	DiskSerial string
	// NetFD, when not 0, is QEMU's end of a datagram socket pair that
	// carries the guest NIC's ethernet frames, one per datagram; the
	// host's end goes to the egress stack.
	NetFD int
}

// guestMAC is the guest NIC's address (QEMU's usual prefix).
const guestMAC = "52:54:00:12:34:56"

// qemuShare is a host directory shared over virtio-9p.
type qemuShare struct {
	Tag      string
	Path     string
	ReadOnly bool
}

// maxDevices is how many virtio devices each machine takes: microvm has 24
// virtio-mmio transports; q35's root bus has 32 slots, a few of them taken.
var maxDevices = map[string]int{"microvm": 24, "q35": 28}

// qemuArgs returns the QEMU command line for s, without the binary.
func qemuArgs(s qemuSpec) ([]string, error) {
	dev := "-pci"
	machine := s.Machine
	switch s.Machine {
	case "microvm":
		dev = "-device"
		// ACPI on: the cloud and generic kernels find virtio-mmio devices
		// through it, and power off through it.
		machine = "microvm,acpi=on,rtc=on"
	case "q35":
	default:
		return nil, fmt.Errorf("unknown machine %q", s.Machine)
	}
	if n := s.devices(); n > maxDevices[s.Machine] {
		return nil, fmt.Errorf("%d layers and mounts need %d virtio devices; the %s machine has %d", len(s.Shares), n, s.Machine, maxDevices[s.Machine])
	}
	if s.MemoryMB == 0 || s.CPUs < 1 {
		return nil, fmt.Errorf("memory %d MiB and %d CPUs: both must be set", s.MemoryMB, s.CPUs)
	}
	cpu := "max"
	switch s.Accel {
	case "kvm", "hvf":
		cpu = "host"
	case "tcg", "whpx":
	default:
		return nil, fmt.Errorf("unknown accelerator %q", s.Accel)
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", machine,
		"-accel", s.Accel,
		"-cpu", cpu,
		"-m", strconv.FormatUint(s.MemoryMB, 10),
		"-smp", strconv.Itoa(s.CPUs),
		"-kernel", s.Kernel,
		"-initrd", s.Initrd,
		"-append", s.Cmdline,
		// The console (kernel messages, the agent's errors) is QEMU's
		// standard output.
		"-chardev", "stdio,id=con,signal=off",
		"-serial", "chardev:con",
		"-chardev", "socket,id=ctl,fd=" + strconv.Itoa(s.ControlFD),
		"-device", "virtio-serial" + dev + ",max_ports=2",
		"-device", "virtserialport,chardev=ctl,name=" + agent.VMPort,
		"-add-fd", "fd=" + strconv.Itoa(s.DiskFDs[0]) + ",set=1",
		"-add-fd", "fd=" + strconv.Itoa(s.DiskFDs[1]) + ",set=1",
		"-drive", "file=/dev/fdset/1,if=none,id=upper,format=raw,cache=unsafe,discard=unmap",
		"-device", "virtio-blk" + dev + ",drive=upper,serial=" + s.DiskSerial,
	}
	if s.NetFD != 0 {
		args = append(args,
			"-netdev", "dgram,id=net0,local.type=fd,local.str="+strconv.Itoa(s.NetFD),
			"-device", "virtio-net"+dev+",netdev=net0,mac="+guestMAC)
	}
	for i, sh := range s.Shares {
		fsdev := "local,id=fs" + strconv.Itoa(i) + ",path=" + qemuEscape(sh.Path) + ",security_model=passthrough"
		if sh.ReadOnly {
			fsdev += ",readonly=on"
		}
		args = append(args, "-fsdev", fsdev, "-device", "virtio-9p"+dev+",fsdev=fs"+strconv.Itoa(i)+",mount_tag="+qemuEscape(sh.Tag))
	}
	return args, nil
}

// devices is the number of virtio devices s needs: the agent's port, the
// disk, the NIC and one per share.
func (s qemuSpec) devices() int {
	n := 2 + len(s.Shares)
	if s.NetFD != 0 {
		n++
	}
	return n
}

// qemuEscape escapes a value inside a QEMU option list (commas double).
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
