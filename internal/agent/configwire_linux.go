package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Messages on the FdConfig socket: descriptors ride in 'F' messages (at
// most configFdsPerMessage each), then one 'C' message holds the Config.
const (
	configFdsPerMessage = 64
	maxConfigSize       = 1 << 20
)

// SendConfig sends files, then cfg, over conn, the host's end of the agent's
// FdConfig socket. Config fields name descriptors by their index in files.
func SendConfig(conn *net.UnixConn, files []*os.File, cfg *Config) error {
	for len(files) > 0 {
		n := min(len(files), configFdsPerMessage)
		fds := make([]int, n)
		for i, f := range files[:n] {
			fds[i] = int(f.Fd())
		}
		if _, _, err := conn.WriteMsgUnix([]byte{'F'}, unix.UnixRights(fds...), nil); err != nil {
			return fmt.Errorf("sending descriptors to the agent: %w", err)
		}
		files = files[n:]
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if len(data) >= maxConfigSize {
		return fmt.Errorf("agent configuration of %d bytes is too large", len(data))
	}
	if _, err := conn.Write(append([]byte{'C'}, data...)); err != nil {
		return fmt.Errorf("sending the configuration to the agent: %w", err)
	}
	return nil
}

// receiveConfig reads what SendConfig sent and turns the Config's indices
// into the received descriptors.
func receiveConfig(fd int) (*Config, error) {
	var fds []int
	buf := make([]byte, maxConfigSize)
	oob := make([]byte, unix.CmsgSpace(configFdsPerMessage*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("the host closed the configuration socket")
		}
		if oobn > 0 {
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				return nil, err
			}
			for i := range msgs {
				got, err := unix.ParseUnixRights(&msgs[i])
				if err != nil {
					return nil, err
				}
				fds = append(fds, got...)
			}
		}
		if buf[0] != 'C' {
			continue
		}
		var cfg Config
		if err := json.Unmarshal(buf[1:n], &cfg); err != nil {
			return nil, err
		}
		return &cfg, cfg.resolveFds(fds)
	}
}

// resolveFds replaces the Config's descriptor indices with descriptors.
func (c *Config) resolveFds(fds []int) error {
	at := func(i *int) error {
		if *i < 0 || *i >= len(fds) {
			return fmt.Errorf("configuration names descriptor %d of %d", *i, len(fds))
		}
		*i = fds[*i]
		return nil
	}
	for _, p := range []*int{&c.Upper, &c.Work, &c.Rootfs} {
		if err := at(p); err != nil {
			return err
		}
	}
	for i := range c.Layers {
		if err := at(&c.Layers[i]); err != nil {
			return err
		}
	}
	for i := range c.Binds {
		if err := at(&c.Binds[i].Source); err != nil {
			return err
		}
	}
	if w := c.Workload; w != nil {
		if len(w.Join) != len(w.Back) {
			return fmt.Errorf("configuration names %d workload cgroups and %d to go back to", len(w.Join), len(w.Back))
		}
		for _, list := range [][]int{w.Join, w.Back} {
			for i := range list {
				if err := at(&list[i]); err != nil {
					return err
				}
			}
		}
	}
	kept := c.keptFds()
	for _, fd := range fds {
		if !slices.Contains(kept, fd) {
			c.received = append(c.received, fd)
		}
	}
	return nil
}
