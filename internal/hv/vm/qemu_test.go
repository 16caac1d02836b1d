package vm

import (
	"slices"
	"strings"
	"testing"
)

// TestQEMUArgs checks the command line for every accelerator and machine:
// KVM's path is exercised here even on hosts that cannot run it.
func TestQEMUArgs(t *testing.T) {
	base := qemuSpec{
		MemoryMB: 512, CPUs: 2, Kernel: "/proc/self/fd/4", Initrd: "/proc/self/fd/5", Cmdline: "console=ttyS0 quiet",
		ControlFD: 3, DiskFDs: [2]int{6, 7}, DiskSerial: "cc-upper",
		Shares: []qemuShare{{Tag: "l0", Path: "/proc/self/fd/8", ReadOnly: true}, {Tag: "b0", Path: "/a,b", ReadOnly: false}},
	}
	for _, tc := range []struct {
		accel, machine string
		want, notWant  []string
	}{
		{"kvm", "microvm", []string{"-accel kvm", "-cpu host", "-machine microvm,acpi=on,rtc=on", "-device virtio-serial-device,max_ports=2", "-device virtio-blk-device,drive=upper,serial=cc-upper"}, []string{"-pci"}},
		{"tcg", "microvm", []string{"-accel tcg", "-cpu max"}, nil},
		{"kvm", "q35", []string{"-accel kvm", "-machine q35", "-device virtio-serial-pci,max_ports=2", "-device virtio-9p-pci,fsdev=fs0,mount_tag=l0"}, []string{"-device virtio-9p-device"}},
		{"hvf", "q35", []string{"-accel hvf", "-cpu host"}, nil},
		{"whpx", "q35", []string{"-accel whpx", "-cpu max"}, nil},
	} {
		s := base
		s.Accel, s.Machine = tc.accel, tc.machine
		args, err := qemuArgs(s)
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.accel, tc.machine, err)
		}
		line := strings.Join(args, " ")
		common := []string{
			"-nodefaults -no-user-config", "-no-reboot", "-m 512", "-smp 2", "-kernel /proc/self/fd/4", "-initrd /proc/self/fd/5",
			"-append console=ttyS0 quiet", "-chardev socket,id=ctl,fd=3", "virtserialport,chardev=ctl,name=cc.agent",
			"-add-fd fd=6,set=1 -add-fd fd=7,set=1", "-drive file=/dev/fdset/1,if=none,id=upper,format=raw",
			"-fsdev local,id=fs0,path=/proc/self/fd/8,security_model=passthrough,readonly=on",
			"-fsdev local,id=fs1,path=/a,,b,security_model=passthrough -device", // commas doubled, writable
		}
		for _, w := range append(common, tc.want...) {
			if !strings.Contains(line, w) {
				t.Errorf("%s/%s: %q missing from\n%s", tc.accel, tc.machine, w, line)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(line, w) {
				t.Errorf("%s/%s: %q in\n%s", tc.accel, tc.machine, w, line)
			}
		}
		if slices.Contains(args, "-daemonize") {
			t.Error("QEMU must stay our child")
		}
		if strings.Contains(line, "-netdev") {
			t.Errorf("%s/%s: a NIC without NetFD", tc.accel, tc.machine)
		}
		s.NetFD = 9
		args, _ = qemuArgs(s)
		line = strings.Join(args, " ")
		nic := "-device virtio-net-device,netdev=net0,mac=" + guestMAC
		if tc.machine == "q35" {
			nic = "-device virtio-net-pci,netdev=net0,mac=" + guestMAC
		}
		for _, w := range []string{"-netdev dgram,id=net0,local.type=fd,local.str=9", nic} {
			if !strings.Contains(line, w) {
				t.Errorf("%s/%s with a NIC: %q missing from\n%s", tc.accel, tc.machine, w, line)
			}
		}
	}
}

func TestQEMUArgsErrors(t *testing.T) {
	ok := qemuSpec{Accel: "tcg", Machine: "microvm", MemoryMB: 256, CPUs: 1}
	for name, mutate := range map[string]func(*qemuSpec){
		"UnknownMachine": func(s *qemuSpec) { s.Machine = "pc-i440fx" },
		"UnknownAccel":   func(s *qemuSpec) { s.Accel = "xen" },
		"NoMemory":       func(s *qemuSpec) { s.MemoryMB = 0 },
		"NoCPUs":         func(s *qemuSpec) { s.CPUs = 0 },
		"TooManyShares":  func(s *qemuSpec) { s.Shares = make([]qemuShare, 23) },
	} {
		s := ok
		mutate(&s)
		if _, err := qemuArgs(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s := ok
	s.Shares = make([]qemuShare, 23)
	s.Machine = "q35"
	if _, err := qemuArgs(s); err != nil {
		t.Errorf("23 shares on q35: %v", err)
	}
}

func TestKernelCmdline(t *testing.T) {
	c := kernelCmdline("tcg", "microvm", true)
	for _, w := range []string{"CC_SANDBOX_AGENT=vm", "rdinit=/init", "panic=-1", "LD_LIBRARY_PATH=/lib/cc-init"} {
		if !strings.Contains(c, w) {
			t.Errorf("%q lacks %s", c, w)
		}
	}
	if hostTSCkHz() > 0 && !strings.Contains(c, "tsc_early_khz=") {
		t.Errorf("microvm under TCG without tsc_early_khz: %q", c)
	}
	if c := kernelCmdline("kvm", "microvm", false); strings.Contains(c, "tsc_early_khz") || strings.Contains(c, "LD_LIBRARY_PATH") {
		t.Errorf("KVM, static: %q", c)
	}
}

func TestAcceleratorOverride(t *testing.T) {
	t.Setenv("CC_VM_ACCEL", "kvm")
	if a, err := accelerator("/nonexistent", false); err != nil || a != "kvm" {
		t.Errorf("CC_VM_ACCEL=kvm: %q %v", a, err)
	}
	t.Setenv("CC_VM_ACCEL", "bogus")
	if _, err := accelerator("/nonexistent", false); err == nil {
		t.Error("CC_VM_ACCEL=bogus accepted")
	}
	t.Setenv("CC_VM_ACCEL", "")
	if a, _ := accelerator("/nonexistent", false); a != "tcg" {
		t.Errorf("no usable /dev/kvm: %q, want tcg", a)
	}
}
