package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
)

// ModeGVisor is the value of EnvMarker for the first process of a gVisor
// sandbox (descriptors 3-4, see GVisorFd*).
const ModeGVisor = "gvisor"

// The gVisor agent's own root: a read-only directory the host prepares,
// which runsc serves as the sandbox's first root. The agent starts from
// it, builds the sandbox's root under GVisorNewRoot and pivots there, so
// nothing of this directory stays reachable by path.
const (
	// GVisorDir holds everything of the agent in its first root.
	GVisorDir = "/.cc"
	// GVisorAgent is the agent's binary (the host binary, bind-mounted).
	GVisorAgent = GVisorDir + "/agent"
	// GVisorConfigFile holds the GVisorConfig as JSON.
	GVisorConfigFile = GVisorDir + "/config.json"
	// GVisorLower is the image: its layers merged by the host, read-only.
	GVisorLower = GVisorDir + "/lower"
	// GVisorRW is where the agent mounts the tmpfs of the writable layer.
	GVisorRW = GVisorDir + "/rw"
	// GVisorNewRoot is where the agent assembles the sandbox's root.
	GVisorNewRoot = GVisorDir + "/root"
	// GVisorCgroup is where the agent mounts gVisor's pids controller.
	GVisorCgroup = GVisorDir + "/cgroup"
)

// GVisorBindDir returns where bind i of the configuration is mounted in the
// agent's first root.
func GVisorBindDir(i int) string { return path.Join(GVisorDir, "bind", strconv.Itoa(i)) }

// Descriptors the gVisor agent inherits (runsc --pass-fd).
const (
	// GVisorFdChannel carries the host's connections: after the agent's
	// one-line answer ("ok", or an error), a yamux session as on a VM's
	// port (see VMMux).
	GVisorFdChannel = 3
	// GVisorFdFrames is a datagram socket carrying the ethernet frames of
	// the egress device, one per datagram.
	GVisorFdFrames = 4
)

// GVisorConfig is what the host tells the gVisor agent, in
// GVisorConfigFile.
type GVisorConfig struct {
	Binds    []GVisorBind
	Hostname string
	// SingleID: only id 0 is mapped on the host (see Config.SingleID).
	SingleID bool
	// DiskMB sizes the writable layer's tmpfs; 0: half the sandbox's
	// memory, tmpfs's default.
	DiskMB uint64
	// PidsMax limits the tasks of the sandbox; 0: no limit.
	PidsMax int64
	// NoFile limits the open files of every process; 0: no limit.
	NoFile uint64
	// Unconfined leaves out the seccomp filter and the capability
	// bounding.
	Unconfined bool
}

// GVisorBind is a host path the host mounted at GVisorBindDir(Index) and
// the agent mounts at Path.
type GVisorBind struct {
	Index    int
	Dir      bool
	Path     string
	Writable bool
}

// maxGVisorConfig bounds the configuration file the agent reads.
const maxGVisorConfig = 1 << 20

// readGVisorConfig reads the agent's configuration from file.
func readGVisorConfig(file string) (*GVisorConfig, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxGVisorConfig+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxGVisorConfig {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, maxGVisorConfig)
	}
	var c GVisorConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", file, err)
	}
	return &c, nil
}
