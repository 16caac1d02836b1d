package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// The VM agent's start, over the virtio-serial port named VMPort, before
// the multiplexed connections begin:
//
//  1. the agent writes VMHello and a newline once it has opened the port;
//  2. the host answers with a VMConfig: a 4-byte big-endian length, then
//     the JSON;
//  3. the agent builds the root and writes "ok" or a one-line error, and a
//     newline;
//  4. after "ok" the port carries a yamux session: the host opens streams,
//     the agent accepts each as an ipc connection.
const (
	// VMPort names the virtio-serial port of the agent.
	VMPort = "cc.agent"
	// VMHello is the agent's first line; its number changes with this
	// exchange.
	VMHello = "cc-agent-vm 1"
	// VMOK is the agent's line once it serves.
	VMOK = "ok"
)

// maxVMConfig bounds the configuration the agent accepts.
const maxVMConfig = 1 << 20

// VMConfig is what the host tells the VM agent at start.
type VMConfig struct {
	// Layers are the 9p mount tags of the read-only layers, lowest first.
	Layers []string
	// UpperSerial is the serial number of the virtio disk holding an
	// empty ext4 file system for the writable layer.
	UpperSerial string
	Binds       []VMBind
	Hostname    string
	// SingleID: only id 0 is mapped on the host (see Config.SingleID).
	SingleID bool
	// UnixNano is the host's clock when it sent the configuration.
	UnixNano int64
}

// VMBind is a host path shared into the VM as a 9p mount tag and mounted at
// Path. A file is shared as its own directory holding it as File.
type VMBind struct {
	Tag      string
	File     string // the file's name inside the share, or "" for a directory
	Path     string
	Writable bool
}

// WriteVMConfig writes c as step 2 of the exchange.
func WriteVMConfig(w io.Writer, c *VMConfig) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if len(b) > maxVMConfig {
		return fmt.Errorf("VM configuration of %d bytes, at most %d", len(b), maxVMConfig)
	}
	msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(msg, b...))
	return err
}

// ReadVMConfig reads step 2 of the exchange, taking exactly its bytes
// from r.
func ReadVMConfig(r io.Reader) (*VMConfig, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("reading the VM configuration: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxVMConfig {
		return nil, fmt.Errorf("VM configuration of %d bytes, at most %d", size, maxVMConfig)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading the VM configuration: %w", err)
	}
	var c VMConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decoding the VM configuration: %w", err)
	}
	return &c, nil
}

// ReadVMLine reads one line of the exchange from r a byte at a time, so
// that nothing after it is consumed. Lines are short: a longer one is an
// error.
func ReadVMLine(r io.Reader) (string, error) {
	var sb strings.Builder
	var b [1]byte
	for sb.Len() < 4096 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return sb.String(), err
		}
		if b[0] == '\n' {
			return sb.String(), nil
		}
		sb.WriteByte(b[0])
	}
	return "", errors.New("line too long")
}

// VMMuxConfig is the yamux configuration both ends of the VM's port use:
// no keep-alive (the host watches the VM process itself, and a guest under
// emulation may be slow to answer), larger windows for throughput, and no
// logging. AcceptBacklog is what the agent's end queues of the host's
// streams, and bounds the host's streams opening at once (yamux takes both
// from it); the host accepts no stream (see guestFrames).
func VMMuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.AcceptBacklog = 1024
	c.MaxStreamWindowSize = 1 << 20
	c.ConnectionWriteTimeout = time.Minute
	c.StreamOpenTimeout = time.Minute
	c.LogOutput = io.Discard
	return c
}
