package gvisor

import (
	"path/filepath"
	"strconv"

	"github.com/ccsandbox/sandbox/internal/agent"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// agentCaps are the capabilities the agent starts with: all, since it
// mounts, pivots and creates devices; it bounds what it starts itself.
var agentCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
}

// bundleSpec is the OCI configuration of the sandbox: the agent as its
// process, the agent root (root, a host path in the launcher's workspace)
// read-only, and the image, the binds and a dynamically linked agent's
// libraries as bind mounts.
func bundleSpec(p *plan, root string) *specs.Spec {
	env := []string{agent.EnvMarker + "=" + agent.ModeGVisor}
	if len(p.Libs) > 0 {
		env = append(env, "LD_LIBRARY_PATH="+joinColon(p.Libs))
	}
	ro := []string{"rbind", "ro"}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: agent.GVisorLower, Type: "bind", Source: filepath.Join(work, "lower"), Options: ro},
	}
	for i := range p.Binds {
		opts := []string{"rbind", "rw"}
		if !p.Agent.Binds[i].Writable {
			opts = ro
		}
		mounts = append(mounts, specs.Mount{Destination: agent.GVisorBindDir(i), Type: "bind",
			Source: filepath.Join(work, "bind", strconv.Itoa(i)), Options: opts})
	}
	for _, l := range p.Libs {
		mounts = append(mounts, specs.Mount{Destination: l, Type: "bind", Source: l, Options: ro})
	}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args:         []string{agent.GVisorAgent},
			Env:          env,
			Cwd:          "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: agentCaps, Effective: agentCaps, Permitted: agentCaps},
		},
		Root:     &specs.Root{Path: root, Readonly: true},
		Hostname: p.Hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
			{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
		}},
	}
}

func joinColon(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ":"
		}
		out += v
	}
	return out
}
